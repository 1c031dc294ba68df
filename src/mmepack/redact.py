"""Remove credentials from any text mmepack prints.

Error messages quote URLs, botocore exceptions and environment values, and CI logs are widely
readable, so every message the CLI prints passes through `redact`. It removes credentials in the
forms they reach a message: the values of the AWS credential variables, AWS access key ids,
the userinfo of a URL, and signed-URL query parameters.

The userinfo is everything up to the LAST `@` of a URL's authority (botocore accepts an
unencoded `@` or space in a password: `http://user:S3cret@Pass@host`), with a scheme or without
one (`user:pass@host:9000`, which botocore refuses as "Invalid endpoint: ..." and prints whole).
A password with a space cannot be told from the text around it by its shape, so the userinfo of
every endpoint and proxy variable set in the environment is also masked as a known secret,
wherever it appears.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

MASK = "***"
SECRET_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    # ECS/EKS container credentials: the header value that fetches the role's keys.
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
# Variables whose value is a URL that may carry a user and password (botocore and the HTTP
# stack read them); AWS_ENDPOINT_URL_<SERVICE> variables are matched by this prefix.
_ENDPOINT_PREFIX = "AWS_ENDPOINT_URL"
URL_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
# Shorter values would mask ordinary words; real keys are far longer.
_MIN_SECRET = 4
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# After a scheme, the authority runs to the first / ? # or line end; its userinfo to the last @
# in it (spaces included: over-masking a message is better than printing half a password).
_USERINFO_RE = re.compile(rf"(?P<scheme>{_SCHEME})[^/?#\r\n]*@")
# Without a scheme: a word holding a colon (user:password) up to the last @ before a host.
_BARE_USERINFO_RE = re.compile(r"(?:^|(?<=[\s'\"(<\[=,]))[^\s/?#@:'\"]+:[^\s/?#]*@(?=[\w\[])")
_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{12,}\b")
_SIGNED_QUERY_RE = re.compile(
    r"(?P<name>X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId)="
    r"[^&\s\"']+",
    re.IGNORECASE,
)


def url_userinfo(url: str) -> str:
    """The userinfo of `url` (scheme optional): everything before the last @ of its authority,
    or "" when it has none."""
    authority = re.sub(rf"^\s*{_SCHEME}", "", url)
    authority = re.split(r"[/?#]", authority, maxsplit=1)[0]
    return authority[: authority.rfind("@")] if "@" in authority else ""


def environment_secrets() -> list[str]:
    """The credential values set in this process's environment, and the userinfo of every
    endpoint or proxy URL set in it."""
    found = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    for name, value in os.environ.items():
        if name.startswith(_ENDPOINT_PREFIX) or name in URL_VARIABLES:
            found.append(url_userinfo(value))
    return found


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known credential and credential-shaped string replaced by `***`."""
    known = {s for s in [*environment_secrets(), *secrets] if s and len(s) >= _MIN_SECRET}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _BARE_USERINFO_RE.sub(f"{MASK}@", text)
    text = _ACCESS_KEY_RE.sub(MASK, text)
    return _SIGNED_QUERY_RE.sub(lambda m: f"{m.group('name')}={MASK}", text)

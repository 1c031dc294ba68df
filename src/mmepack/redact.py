"""Remove credentials from any text mmepack prints.

Error messages quote URLs, botocore exceptions and environment values, and CI logs are widely
readable, so every message the CLI prints passes through `redact`. It removes credentials in the
forms they reach a message: the values of the AWS credential variables, AWS access key ids,
the userinfo of a URL (`https://user:password@host`), and signed-URL query parameters.
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
# Shorter values would mask ordinary words; real keys are far longer.
_MIN_SECRET = 4
_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
_ACCESS_KEY_RE = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{12,}\b")
_SIGNED_QUERY_RE = re.compile(
    r"(?P<name>X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId)="
    r"[^&\s\"']+",
    re.IGNORECASE,
)


def environment_secrets() -> list[str]:
    """The credential values set in this process's environment."""
    return [os.environ.get(name, "") for name in SECRET_VARIABLES]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known credential and credential-shaped string replaced by `***`."""
    known = {s for s in [*environment_secrets(), *secrets] if s and len(s) >= _MIN_SECRET}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _ACCESS_KEY_RE.sub(MASK, text)
    return _SIGNED_QUERY_RE.sub(lambda m: f"{m.group('name')}={MASK}", text)

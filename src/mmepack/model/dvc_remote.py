"""The DVC remote a model's weights come from: which one, whether mmepack can reach its kind, and
what went wrong when a pull fails.

DVC reports a failed download as "1 files failed to download" and logs the real cause (a 403,
a refused connection, a timeout) separately; a build log needs the cause, named in the terms a
team can act on (credentials, bucket, endpoint), so the translation lives here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmepack.errors import MmepackError

# Remote URL scheme -> (DVC plugin distribution, its import name). The mmepack command line
# carries dvc-s3 (and dvc-http, which dvc itself requires); local folders need no plugin.
_PLUGINS = {
    "s3": ("dvc-s3", "dvc_s3"),
    "http": ("dvc-http", "dvc_http"),
    "https": ("dvc-http", "dvc_http"),
    "gs": ("dvc-gs", "dvc_gs"),
    "azure": ("dvc-azure", "dvc_azure"),
    "ssh": ("dvc-ssh", "dvc_ssh"),
    "hdfs": ("dvc-hdfs", "dvc_hdfs"),
    "webhdfs": ("dvc-webhdfs", "dvc_webhdfs"),
    "oss": ("dvc-oss", "dvc_oss"),
    "gdrive": ("dvc-gdrive", "dvc_gdrive"),
    "webdav": ("dvc-webdav", "dvc_webdav"),
    "webdavs": ("dvc-webdav", "dvc_webdav"),
}

# A stalled S3 download must end the build, not hang it: these apply unless the team's DVC
# config sets its own (`dvc remote modify <name> read_timeout <s>`).
S3_CONNECT_TIMEOUT_S = 15
S3_READ_TIMEOUT_S = 60


@dataclass(frozen=True)
class Remote:
    """The default remote as DVC resolved it, plus the overrides mmepack applies to it."""

    name: str
    url: str
    settings: dict[str, Any]

    @property
    def scheme(self) -> str:
        parsed = urlsplit(self.url)
        # A Windows drive letter or a plain path is a local remote.
        return parsed.scheme if len(parsed.scheme) > 1 else ""

    def describe(self) -> str:
        return f"DVC remote '{self.name}' ({self.url})"

    def endpoint(self) -> str | None:
        """Where S3 requests go, for messages: the remote's own setting, then AWS's variables."""
        if self.scheme != "s3":
            return None
        configured = self.settings.get("endpointurl")
        return (
            str(configured)
            if configured
            else (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
        )

    def overrides(self, repo_root: Path, checkout: Path | None) -> dict[str, Any]:
        """Settings mmepack adds on top of the team's config for this pull."""
        extra: dict[str, Any] = {}
        if self.scheme == "s3":
            extra["connect_timeout"] = self.settings.get("connect_timeout", S3_CONNECT_TIMEOUT_S)
            extra["read_timeout"] = self.settings.get("read_timeout", S3_READ_TIMEOUT_S)
        elif self.scheme == "" and checkout is not None:
            # A sandbox holds a copy of the repository but not its local remote folder: read that
            # folder where it is, in the checkout the sandbox was made from.
            local = Path(self.url)
            if local.is_absolute() and local.is_relative_to(repo_root.resolve()):
                extra["url"] = str(checkout / local.relative_to(repo_root.resolve()))
        return extra


def default_remote(config: Any, model: str, dvc_files: str) -> Remote:
    """The repository's default remote, or an error saying how to set one."""
    name = config["core"].get("remote")
    remotes = config.get("remote", {})
    if not name or name not in remotes:
        raise MmepackError(
            f"model '{model}': {dvc_files} tracks weights but the repository has no default DVC "
            "remote; set one with `dvc remote add -d storage s3://<bucket>/<prefix>` and commit "
            ".dvc/config"
        )
    settings = dict(remotes[name])
    return Remote(name=str(name), url=str(settings.get("url", "")), settings=settings)


def require_plugin(remote: Remote, model: str, dvc_files: str) -> None:
    """Refuse a remote kind whose DVC plugin this installation lacks, naming what to add."""
    if remote.scheme == "":
        return
    plugin = _PLUGINS.get(remote.scheme)
    if plugin is None:
        raise MmepackError(
            f"model '{model}': {dvc_files}: {remote.describe()} is of a kind mmepack does not "
            "know; use an s3://, http(s):// or local-folder remote"
        )
    distribution, module = plugin
    if importlib.util.find_spec(module) is None:
        raise MmepackError(
            f"model '{model}': {dvc_files}: {remote.describe()} needs the DVC plugin "
            f"'{distribution}', which this mmepack does not carry; add `{distribution}` to "
            "3rdparty/python/requirements.txt, make src/mmepack/BUILD's model/weights.py depend "
            "on it (as it does on dvc-s3), and regenerate the lock with "
            "`./pants generate-lockfiles --resolve=python-default`"
        )


def bucket_missing(repo: Any, remote: Remote) -> bool:
    """Whether an S3 remote's bucket is absent: S3 reports its objects as merely missing."""
    if remote.scheme != "s3":
        return False
    bucket = urlsplit(remote.url).netloc
    try:
        return not repo.cloud.get_remote(remote.name).fs.exists(bucket)
    except Exception:  # noqa: BLE001 - only a hint for the message; the pull failed anyway
        return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def explain(remote: Remote, failures: list[BaseException], no_bucket: bool = False) -> str:
    """One sentence on why the remote failed, from the exceptions DVC logged."""
    endpoint = remote.endpoint()
    where = f" at {endpoint}" if endpoint else ""
    if no_bucket:
        return f"its bucket does not exist{where}; check the remote's URL in .dvc/config"
    for failure in failures:
        for exc in _chain(failure):
            names = _names(exc)
            text = str(exc)
            if "NoCredentialsError" in names or "Unable to locate credentials" in text:
                return (
                    "no AWS credentials were found; set AWS_PROFILE (with "
                    "AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE if not in ~/.aws) or "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            if "NoSuchBucket" in text:
                return f"its bucket does not exist{where}; check the remote's URL in .dvc/config"
            if isinstance(exc, PermissionError) or any(
                code in text
                for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403")
            ):
                return (
                    f"the remote{where} rejected the credentials (access denied); check "
                    "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and their access to "
                    "the bucket"
                )
            if names & {"ReadTimeoutError", "TimeoutError", "FSTimeoutError", "ReadTimeout"}:
                return (
                    f"the remote{where} stopped answering (no data within the read timeout, "
                    f"{remote.settings.get('read_timeout', S3_READ_TIMEOUT_S)} s by default "
                    "for S3); retry, or raise it with `dvc remote modify "
                    f"{remote.name} read_timeout <seconds>`"
                )
            if names & {
                "EndpointConnectionError",
                "ConnectTimeoutError",
                "ClientConnectorError",
                "ConnectionError",
                "ServerDisconnectedError",
            }:
                return (
                    f"cannot reach the remote's endpoint{where or ''} ({text.splitlines()[0]}); "
                    "check AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL, the network and proxies"
                )
    if failures:
        first = failures[0]
        return f"{type(first).__name__}: {str(first).splitlines()[0] if str(first) else ''}"
    return (
        "the remote does not hold these objects; `dvc push` them from the machine that added them"
    )

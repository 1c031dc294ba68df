"""Publish artifacts to S3 (staging or production) and promote them from staging to production.

Rules:

- `main` publishes to the production bucket, every other branch to the staging bucket.
- The file is checked before anything is sent (a gzip tar in the MME layout, safe members only,
  named after the model it holds) and hashed in that same read; the upload re-hashes the bytes it
  sends and completes only if they match, so the recorded sha256 is that of the stored bytes.
- Production keys are written once: the object and its manifest are written with S3's
  conditional `If-None-Match: *`, so of two racing publishers exactly one stores its bytes; the
  other is refused (or told "unchanged" when its bytes are the same). Staging may be overwritten,
  and the result says so.
- Nothing partial is ever visible under the final key: a single PUT carries its SHA-256 and
  a multipart upload becomes visible only when completed, each part carrying its SHA-256; an
  unfinished multipart upload is aborted in one `finally`, whatever happened. Any failure or
  Ctrl-C says which state it left (object and manifest absent, the object without its manifest,
  or both), and publishing again finishes each of them.
- Every object carries its SHA-256 (S3-verified checksum and `mmepack-sha256` metadata) and a
  `<name>.manifest.json` provenance record beside it.
- Every request has bounded connect and read timeouts (CONNECT_TIMEOUT, READ_TIMEOUT) and a
  bounded number of attempts, so a stalled network fails instead of hanging.
- Credentials never appear in messages (mmepack.redact).

The S3 client honours the usual AWS configuration, including `AWS_ENDPOINT_URL_S3` and
`AWS_ENDPOINT_URL` (botocore reads them itself), so a local S3-compatible server works unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)

from mmepack.artifact.check import CheckedArtifact, check_artifact
from mmepack.artifact.diff import describe_difference
from mmepack.errors import Interrupted, MmepackError
from mmepack.model.version import VERSION_FILE, artifact_name
from mmepack.publish.revision import from_ci_or_git
from mmepack.publish.tested import manifest_tested
from mmepack.redact import redact
from mmepack_contract import BRANCH_VARIABLES

if TYPE_CHECKING:
    # From types-boto3[s3] (3rdparty/python), which Pants maps to boto3 for type checking.
    from types_boto3_s3 import S3Client  # pants: no-infer-dep
else:
    S3Client = Any

PRODUCTION_BRANCH = "main"
SHA256_METADATA = "mmepack-sha256"
MANIFEST_SUFFIX = ".manifest.json"
# Total attempts per request (the first one included); $AWS_MAX_ATTEMPTS overrides it.
MAX_ATTEMPTS = 4
# Seconds to open a connection, and seconds a connection may pass no bytes either way (a server
# that stops reading an upload included) before the attempt fails; the MMEPACK_S3_* variables
# override them. With standard-mode backoff (at most 20 s between attempts) one request fails
# within MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + 60 s: 220 s with these defaults.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
CONNECT_TIMEOUT_VARIABLE = "MMEPACK_S3_CONNECT_TIMEOUT"
READ_TIMEOUT_VARIABLE = "MMEPACK_S3_READ_TIMEOUT"
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "403",
    "Forbidden",
}
_MISSING_BUCKET_CODES = {"NoSuchBucket"}


@dataclass(frozen=True)
class PublishResult:
    """What one publish or promotion did.

    `status`: "uploaded" (new key), "unchanged" (same bytes already there), "replaced" (staging
    key overwritten with new bytes), "promoted", or "dry-run".
    """

    status: str
    bucket: str
    key: str
    sha256: str
    manifest_key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# --------------------------------------------------------------------------- branch and bucket


def current_branch(override: str | None = None) -> str | None:
    """The branch being built: `override`, then CI variables, then git; None when unknown."""
    if override:
        return override
    branch = from_ci_or_git(BRANCH_VARIABLES, ["rev-parse", "--abbrev-ref", "HEAD"])
    # A detached HEAD prints "HEAD": not a branch, so not production.
    return branch if branch != "HEAD" else None


def choose_bucket(
    branch: str | None, staging_bucket: str | None, production_bucket: str | None
) -> str:
    """`main` publishes to production, everything else (an unknown branch too) to staging."""
    if branch == PRODUCTION_BRANCH:
        if not production_bucket:
            raise MmepackError(
                f"branch '{branch}' publishes to the production bucket, but none is set; pass "
                "--production-bucket or set MMEPACK_PRODUCTION_BUCKET"
            )
        return production_bucket
    if not staging_bucket:
        raise MmepackError(
            f"branch '{branch or 'unknown'}' publishes to the staging bucket, but none is set; "
            "pass --staging-bucket or set MMEPACK_STAGING_BUCKET"
        )
    return staging_bucket


def object_key(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


# --------------------------------------------------------------------------- client and errors


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise MmepackError(
            f"${variable} is {raw!r}; expected a number of seconds between 0 and 3600, e.g. 30"
        )
    return value


def make_client(region: str | None = None) -> S3Client:
    """An S3 client with bounded timeouts and standard-mode retries (see CONNECT_TIMEOUT)."""
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    total = int(attempts) if attempts.isdigit() and int(attempts) > 0 else MAX_ATTEMPTS
    config = Config(
        retries={"total_max_attempts": total, "mode": "standard"},
        connect_timeout=_seconds(CONNECT_TIMEOUT_VARIABLE, CONNECT_TIMEOUT),
        read_timeout=_seconds(READ_TIMEOUT_VARIABLE, READ_TIMEOUT),
    )
    try:
        session = boto3.session.Session(region_name=region)
        client: S3Client = session.client("s3", config=config)
    except (ValueError, BotoCoreError) as exc:
        raise MmepackError(
            redact(
                f"cannot configure the S3 client: {exc}; check AWS_ENDPOINT_URL_S3 and "
                "AWS_ENDPOINT_URL (a URL such as https://s3.example.com), AWS_PROFILE and the "
                "region"
            )
        ) from None
    return client


def _client_secrets(client: S3Client | None) -> list[str]:
    """The credentials a client signs with (they may come from a profile, not the environment)."""
    found: list[str] = []
    if client is not None:
        try:
            signer = getattr(client, "_request_signer", None)
            credentials = getattr(signer, "_credentials", None)
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                found += [frozen.access_key or "", frozen.secret_key or "", frozen.token or ""]
        except Exception:  # noqa: BLE001 - scrubbing must never fail
            pass
    return found


def scrub(text: str, client: S3Client | None = None) -> str:
    """`text` with every credential (environment, client, URL userinfo) replaced by `***`."""
    return redact(text, _client_secrets(client))


def _endpoint(client: S3Client) -> str:
    return str(client.meta.endpoint_url)


def _find_cause(exc: BaseException) -> BaseException:
    """The ClientError or connection error behind boto3's wrappers (e.g. S3UploadFailedError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ClientError, BotoCoreError)):
            return current
        current = current.__cause__ or current.__context__
    return exc


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or str(status or "")
    return ""


def explain(exc: BaseException, action: str, bucket: str, client: S3Client) -> MmepackError:
    """An MmepackError saying what failed and what to do, with credentials scrubbed."""
    cause = _find_cause(exc)
    code = _error_code(cause)
    endpoint = _endpoint(client)
    if code in _MISSING_BUCKET_CODES:
        message = (
            f"{action}: bucket '{bucket}' does not exist at {endpoint}; check the bucket name "
            "(--staging-bucket/--production-bucket, MMEPACK_*_BUCKET) and the region/endpoint"
        )
    elif code in _CREDENTIAL_CODES:
        message = (
            f"{action}: S3 at {endpoint} rejected the credentials ({code}) for bucket "
            f"'{bucket}'; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the AWS profile) and "
            "that they may write to this bucket"
        )
    elif isinstance(cause, NoCredentialsError):
        message = (
            f"{action}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    elif isinstance(
        cause,
        (
            EndpointConnectionError,
            ConnectTimeoutError,
            ConnectionClosedError,
            ReadTimeoutError,
            HTTPClientError,
        ),
    ):
        message = (
            f"{action}: cannot reach S3 at {endpoint}, or the connection broke (after retries): "
            f"{cause}; check the "
            "network and AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL/region"
        )
    else:
        message = f"{action}: {type(cause).__name__}: {cause}"
    return MmepackError(scrub(message, client))


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """The object's HEAD response, or None if there is no such key."""
    try:
        response = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise
    return dict(response)


def _stored_sha256(head: dict[str, Any]) -> str | None:
    metadata: dict[str, str] = head.get("Metadata", {})
    return metadata.get(SHA256_METADATA)


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _check_bucket(client: S3Client, bucket: str, action: str) -> None:
    """Fail early, and clearly, on a missing bucket (HEAD of a key would only say 404)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            missing = ClientError(
                {"Error": {"Code": "NoSuchBucket", "Message": "The bucket does not exist"}},
                "HeadBucket",
            )
            raise explain(missing, action, bucket, client) from None
        raise explain(exc, action, bucket, client) from None
    except BotoCoreError as exc:
        raise explain(exc, action, bucket, client) from None


# --------------------------------------------------------------------------- publish


def _metadata(provenance: dict[str, Any], sha256: str) -> dict[str, str]:
    fields = {
        SHA256_METADATA: sha256,
        "mmepack-model": str(provenance.get("model", "")),
        "mmepack-model-version": str(provenance.get("version", "")),
        "mmepack-git-commit": str(provenance.get("git_commit") or ""),
        "mmepack-tool-version": str(provenance.get("mmepack_version", "")),
    }
    return {key: value for key, value in fields.items() if value}


def _put_manifest(
    client: S3Client,
    bucket: str,
    key: str,
    record: dict[str, Any],
    sha256: str,
    conditional: dict[str, str],
) -> None:
    body = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    _put_manifest_bytes(client, bucket, key, body, sha256, bool(conditional))


def _put_manifest_bytes(
    client: S3Client, bucket: str, key: str, body: bytes, sha256: str, only_if_absent: bool
) -> None:
    """PUT a manifest with its own checksum, and `If-None-Match: *` when `only_if_absent`."""
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=_b64(hashlib.sha256(body).hexdigest()),
        Metadata={SHA256_METADATA: sha256},
        **_conditional(only_if_absent),  # type: ignore[arg-type]
    )


def _transfer_config(multipart_threshold: int | None) -> TransferConfig:
    threshold = multipart_threshold or DEFAULT_MULTIPART_THRESHOLD
    return TransferConfig(
        multipart_threshold=threshold,
        multipart_chunksize=max(5 * 1024 * 1024, min(threshold, DEFAULT_MULTIPART_CHUNKSIZE)),
    )


def _refusal(
    model: str, version: str, url: str, stored: str | None, local: str, members: str = ""
) -> MmepackError:
    detail = f"\nWhat differs, member by member:\n{members}" if members else ""
    return MmepackError(
        f"model '{model}' version {version}: {url} already exists with different content "
        f"(sha256 {stored or 'unknown'}, this artifact {local}); a published version is never "
        f"overwritten: bump {VERSION_FILE} of model '{model}' and package again{detail}"
    )


def _member_report(client: S3Client, bucket: str, key: str, path: Path) -> str:
    """Which tar members differ from the stored object (artifact.diff); best effort, since the
    refusal stands either way."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return describe_difference(cast(IO[bytes], body), path)
        finally:
            body.close()
    except Exception as exc:  # the comparison only explains the refusal; never mask it
        return scrub(f"(the members could not be compared: {type(exc).__name__}: {exc})", client)


def _precondition_failed(exc: BaseException) -> bool:
    """True when S3 refused a conditional write because the key already exists."""
    cause = _find_cause(exc)
    return _error_code(cause) in {"PreconditionFailed", "412"}


def _conditional(protect_existing: bool) -> dict[str, str]:
    """`If-None-Match: *` for production writes: S3 stores them only if the key is absent."""
    return {"IfNoneMatch": "*"} if protect_existing else {}


def _changed_error(path: Path, sha256: str, sent: str) -> MmepackError:
    return MmepackError(
        f"{path}: the file changed while it was being published (checked sha256 {sha256}, "
        f"bytes read for the upload {sent}); nothing was stored; let the build that writes it "
        "finish, then publish again"
    )


@dataclass
class _Upload:
    """The one multipart upload in flight, so a `finally` can abort it whatever happened."""

    upload_id: str | None = None
    # The request that makes the object visible (the PUT, or the multipart completion) was
    # started: an interruption from then on may or may not have stored it.
    finishing: bool = False


def _send(
    s3: S3Client,
    bucket: str,
    key: str,
    checked: CheckedArtifact,
    metadata: dict[str, str],
    config: TransferConfig,
    conditional: dict[str, str],
    callback: Callable[[int], None] | None,
    upload: _Upload,
) -> None:
    """Upload the artifact straight to its final key, re-hashing exactly the bytes sent.

    A single PUT carries the SHA-256 of its body and a multipart upload the SHA-256 of each part,
    so S3 refuses bytes damaged on the way; the object becomes visible only when the PUT or the
    multipart completion succeeds, and that last request is refused (412) when `conditional`
    holds `If-None-Match: *` and the key exists. If the bytes read for sending do not hash to
    the checked sha256, nothing is completed.
    """
    path = checked.path
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if checked.size < config.multipart_threshold:
            body = handle.read(checked.size + 1)
            digest.update(body)
            if digest.hexdigest() != checked.sha256:
                raise _changed_error(path, checked.sha256, digest.hexdigest())
            upload.finishing = True
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(checked.sha256),
                Metadata=metadata,
                ContentType="application/gzip",
                **conditional,  # type: ignore[arg-type]
            )
            if callback is not None:
                callback(len(body))
            return
        created = s3.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ChecksumAlgorithm="SHA256",
            Metadata=metadata,
            ContentType="application/gzip",
        )
        upload.upload_id = created["UploadId"]
        part_size = _part_size(config.multipart_chunksize, checked.size)
        parts: list[dict[str, Any]] = []
        for number, chunk in enumerate(iter(lambda: handle.read(part_size), b""), start=1):
            digest.update(chunk)
            part_sha = _b64(hashlib.sha256(chunk).hexdigest())
            response = s3.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=chunk,
                ChecksumSHA256=part_sha,
            )
            parts.append(
                {"ETag": response["ETag"], "PartNumber": number, "ChecksumSHA256": part_sha}
            )
            if callback is not None:
                callback(len(chunk))
        if digest.hexdigest() != checked.sha256:
            raise _changed_error(path, checked.sha256, digest.hexdigest())
        upload.finishing = True
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            **conditional,  # type: ignore[arg-type]
        )
        upload.upload_id = None


def _write_manifest(
    s3: S3Client,
    bucket: str,
    key: str,
    record: dict[str, Any],
    sha256: str,
    protect_existing: bool,
) -> None:
    """Write the manifest of `sha256` unless one for these bytes is already there.

    In production the write is conditional too, so two publishers of one key can never leave a
    manifest that describes the bytes of the one that lost.
    """
    head = _head(s3, bucket, key)
    if head is not None and _stored_sha256(head) == sha256:
        if protect_existing or not manifest_tested(record, sha256):
            return
        # Staging: a passing test record of these bytes may have arrived since they were first
        # published; `promote` reads it from this manifest.
        try:
            current = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except (ClientError, ValueError):
            current = {}
        if isinstance(current, dict) and manifest_tested(current, sha256):
            return
    elif head is not None and protect_existing:
        raise MmepackError(
            f"s3://{bucket}/{key} describes other bytes (sha256 {_stored_sha256(head)}) than the "
            f"object it sits beside (sha256 {sha256}); it was written by something other than "
            "mmepack publish: delete it and publish again to write the right one"
        )
    try:
        _put_manifest(s3, bucket, key, record, sha256, _conditional(protect_existing))
    except ClientError as exc:
        if not _precondition_failed(exc):
            raise
        # Another publisher of the same bytes wrote it first; check that it describes them.
        _write_manifest(s3, bucket, key, record, sha256, protect_existing)


def _lost_race(
    s3: S3Client,
    bucket: str,
    key: str,
    manifest_key: str,
    record: dict[str, Any],
    checked: CheckedArtifact,
    echo: Callable[[str], None],
) -> PublishResult:
    """S3 refused the conditional write: someone else's object is under the key now."""
    url = f"s3://{bucket}/{key}"
    winner = _head(s3, bucket, key)
    stored = _stored_sha256(winner) if winner is not None else None
    if stored != checked.sha256:
        raise MmepackError(
            f"{_refusal(checked.model, checked.version, url, stored, checked.sha256)} (another "
            "publish of this version won the race and wrote its bytes first)"
        )
    _write_manifest(s3, bucket, manifest_key, record, checked.sha256, True)
    echo(f"mmepack: {url} unchanged (sha256 {checked.sha256}; a concurrent publish wrote it)")
    return PublishResult("unchanged", bucket, key, checked.sha256, manifest_key)


def publish_artifact(
    path: Path,
    bucket: str,
    prefix: str,
    *,
    provenance: dict[str, Any],
    protect_existing: bool,
    region: str | None = None,
    dry_run: bool = False,
    multipart_threshold: int | None = None,
    callback: Callable[[int], None] | None = None,
    client: S3Client | None = None,
    echo: Callable[[str], None] = print,
) -> PublishResult:
    """Upload `path` to `s3://bucket/prefix/<name>` with its manifest; see the module docstring.

    `protect_existing` (True for production) writes the key only if it is absent (S3's
    `If-None-Match: *`), so of two racing publishers exactly one stores its bytes and the other
    is refused, or told "unchanged" when its bytes are the same. Otherwise the key is replaced
    and the status is "replaced". `callback` receives the bytes sent.
    """
    checked = check_artifact(path)
    sha256 = checked.sha256
    recorded = provenance.get("sha256")
    if recorded and recorded != sha256:
        raise MmepackError(
            f"{path}: its sha256 {sha256} differs from the provenance record's {recorded}; the "
            "file changed after the record was made; publish again once the build is finished"
        )
    key = object_key(prefix, path.name)
    manifest_key = key + MANIFEST_SUFFIX
    record = {**provenance, "sha256": sha256, "size": checked.size, "key": key}
    url = f"s3://{bucket}/{key}"
    if dry_run:
        how = (
            "only if that key is absent" if protect_existing else "replacing that key if it exists"
        )
        echo(
            f"mmepack: dry run: would upload {path} ({checked.size} bytes, sha256 {sha256}) to "
            f"{url} ({how}) "
            f"and its manifest to s3://{bucket}/{manifest_key}; S3 was not read and nothing "
            "was sent"
        )
        return PublishResult("dry-run", bucket, key, sha256, manifest_key)

    s3 = client or make_client(region)
    action = f"publishing {path.name} to {url}"
    upload = _Upload()
    unchanged = outcome = f"{url} was not changed."
    try:
        _check_bucket(s3, bucket, action)
        existing = _head(s3, bucket, key)
        replaced = existing is not None
        if existing is not None:
            stored = _stored_sha256(existing)
            if stored == sha256:
                outcome = (
                    f"{url} is in place but its manifest is not "
                    f"(s3://{bucket}/{manifest_key}); publish again to write it."
                )
                _write_manifest(s3, bucket, manifest_key, record, sha256, protect_existing)
                echo(f"mmepack: {url} unchanged (sha256 {sha256})")
                return PublishResult("unchanged", bucket, key, sha256, manifest_key)
            if protect_existing:
                members = _member_report(s3, bucket, key, checked.path)
                raise _refusal(checked.model, checked.version, url, stored, sha256, members)
        metadata = _metadata(record, sha256)
        config = _transfer_config(multipart_threshold)
        try:
            _send(
                s3,
                bucket,
                key,
                checked,
                metadata,
                config,
                _conditional(protect_existing),
                callback,
                upload,
            )
        except ClientError as exc:
            if protect_existing and _precondition_failed(exc):
                return _lost_race(s3, bucket, key, manifest_key, record, checked, echo)
            raise
        outcome = (
            f"{url} is in place but its manifest is not (s3://{bucket}/{manifest_key}); "
            "publish again to write it (the stored object is kept, not uploaded again)."
        )
        _write_manifest(s3, bucket, manifest_key, record, sha256, protect_existing)
        outcome = f"{url} and its manifest are both stored; nothing is left to do."
    except KeyboardInterrupt:
        if upload.finishing and outcome == unchanged:
            # Ctrl-C while the request that makes the object visible was on its way: S3 may
            # have acted on it or not, and nothing partial is ever visible either way.
            outcome = (
                f"{url} is either unchanged or complete without its manifest; publish again "
                "to finish."
            )
        raise Interrupted(scrub(f"{action}: {outcome}", s3)) from None
    except MmepackError as exc:
        raise MmepackError(scrub(f"{exc}\n{outcome}", s3)) from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one explained error
        if isinstance(_find_cause(exc), (ClientError, BotoCoreError)):
            error = explain(exc, action, bucket, s3)
            raise MmepackError(f"{error}\n{outcome}") from None
        raise MmepackError(
            scrub(f"{action}: interrupted ({type(exc).__name__}: {exc})\n{outcome}", s3)
        ) from None
    finally:
        # The one cleanup: an unfinished multipart upload is invisible but costs storage.
        if upload.upload_id is not None:
            _abort_upload(s3, bucket, key, upload.upload_id)
    status = "replaced" if replaced else "uploaded"
    note = f" (replaced an object with different content in {bucket})" if replaced else ""
    echo(f"mmepack: {status} {url}{note} (sha256 {sha256}) and {manifest_key}")
    return PublishResult(status, bucket, key, sha256, manifest_key)


def _abort_upload(s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:  # noqa: BLE001 - best effort; the original error is what matters
        pass


def _part_size(chunksize: int, size: int) -> int:
    """A part size within S3's 5 MiB..5 GiB, doubled until the object needs <= 10,000 parts."""
    chunksize = min(max(chunksize, 5 * 1024 * 1024), 5 * 1024 * 1024 * 1024)
    while -(-size // chunksize) > 10_000:
        chunksize *= 2
    return chunksize


# --------------------------------------------------------------------------- promote


def _copy_only_if_absent(
    s3: S3Client,
    source_bucket: str,
    key: str,
    source: dict[str, Any],
    target_bucket: str,
    config: TransferConfig,
    upload: _Upload,
) -> None:
    """Server-side copy of `key` that lands only if the target key is absent.

    A CopyObject cannot be conditional, but a multipart upload's completion can: the parts are
    copied server-side (each pinned to the source's ETag) and the completion carries
    `If-None-Match: *`, so a concurrent promote or publish of the key makes this one fail (412).
    """
    size = int(source.get("ContentLength") or 0)
    part_size = _part_size(config.multipart_chunksize, size)
    created = s3.create_multipart_upload(
        Bucket=target_bucket,
        Key=key,
        ChecksumAlgorithm="SHA256",
        Metadata=dict(source.get("Metadata", {})),
        ContentType=str(source.get("ContentType") or "application/gzip"),
    )
    upload.upload_id = created["UploadId"]
    parts: list[dict[str, Any]] = []
    for number, start in enumerate(range(0, max(size, 1), part_size), start=1):
        end = min(start + part_size, size) - 1
        response = s3.upload_part_copy(
            Bucket=target_bucket,
            Key=key,
            UploadId=upload.upload_id,
            PartNumber=number,
            CopySource={"Bucket": source_bucket, "Key": key},
            CopySourceIfMatch=str(source["ETag"]),
            CopySourceRange=f"bytes={start}-{max(end, start)}",
        )
        result = dict(response.get("CopyPartResult", {}))
        part: dict[str, Any] = {"ETag": result["ETag"], "PartNumber": number}
        if result.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = result["ChecksumSHA256"]
        parts.append(part)
    s3.complete_multipart_upload(
        Bucket=target_bucket,
        Key=key,
        UploadId=upload.upload_id,
        MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
        IfNoneMatch="*",
    )
    upload.upload_id = None


def promote(
    model: str,
    version: str,
    staging_bucket: str,
    production_bucket: str,
    prefix: str,
    *,
    region: str | None = None,
    dry_run: bool = False,
    multipart_threshold: int | None = None,
    client: S3Client | None = None,
    echo: Callable[[str], None] = print,
    untested: str | None = None,
) -> PublishResult:
    """Copy exactly the staging object of `model` `version` (and its manifest) to production.

    Server-side, pinned to the staging object's ETag, and only if the production key is absent
    (a racing publish or promote of the same key wins or loses as a whole); refused if
    production holds different bytes under that key, a no-op if it holds the same. Refused too
    when the staging manifest has no passing test record of these bytes
    (`mmepack.publish.tested`), unless `untested` gives the override's reason, which the
    production manifest then records.
    """
    name = artifact_name(model, version)
    key = object_key(prefix, name)
    manifest_key = key + MANIFEST_SUFFIX
    source_url = f"s3://{staging_bucket}/{key}"
    url = f"s3://{production_bucket}/{key}"
    s3 = client or make_client(region)
    action = f"promoting {source_url} to {url}"
    upload = _Upload()
    try:
        _check_bucket(s3, staging_bucket, action)
        _check_bucket(s3, production_bucket, action)
        source = _head(s3, staging_bucket, key)
        if source is None:
            raise MmepackError(
                f"{action}: model '{model}' version {version} is not in staging ({source_url}); "
                "publish it from a branch first"
            )
        sha256 = _stored_sha256(source)
        if not sha256:
            raise MmepackError(
                f"{action}: {source_url} has no {SHA256_METADATA} metadata; it was not "
                "published by mmepack, re-publish it"
            )
        manifest_body = _tested_manifest(
            s3, staging_bucket, manifest_key, sha256, untested, f"{action}: {source_url}"
        )
        target = _head(s3, production_bucket, key)
        if target is None and dry_run:
            echo(f"mmepack: dry run: would copy {source_url} (sha256 {sha256}) to {url}")
            return PublishResult("dry-run", production_bucket, key, sha256, manifest_key)
        status = "promoted"
        if target is None:
            try:
                _copy_only_if_absent(
                    s3,
                    staging_bucket,
                    key,
                    source,
                    production_bucket,
                    _transfer_config(multipart_threshold),
                    upload,
                )
            except ClientError as exc:
                if not _precondition_failed(exc):
                    raise
                target = _head(s3, production_bucket, key)
        if target is not None:
            stored = _stored_sha256(target)
            if stored != sha256:
                raise _refusal(model, version, url, stored, sha256)
            status = "unchanged"
        copied = _head(s3, production_bucket, key)
        if copied is None or _stored_sha256(copied) != sha256:
            raise MmepackError(f"{action}: the copy in production does not carry sha256 {sha256}")
        _copy_manifest(s3, staging_bucket, production_bucket, manifest_key, sha256, manifest_body)
    except MmepackError as exc:
        raise MmepackError(scrub(str(exc), s3)) from None
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, action, production_bucket, s3) from None
    finally:
        if upload.upload_id is not None:
            _abort_upload(s3, production_bucket, key, upload.upload_id)
    if status == "unchanged":
        echo(f"mmepack: {url} unchanged (sha256 {sha256})")
    else:
        echo(f"mmepack: promoted {source_url} to {url} (sha256 {sha256})")
    return PublishResult(status, production_bucket, key, sha256, manifest_key)


def _tested_manifest(
    s3: S3Client,
    staging_bucket: str,
    manifest_key: str,
    sha256: str,
    untested: str | None,
    what: str,
) -> bytes | None:
    """Refuse to promote bytes whose staging manifest has no passing test record; with the
    override, the manifest production gets instead (None: copy staging's as it is)."""
    try:
        body = s3.get_object(Bucket=staging_bucket, Key=manifest_key)["Body"].read()
        manifest = json.loads(body)
    except (ClientError, ValueError):
        manifest = {}
    if isinstance(manifest, dict) and manifest_tested(manifest, sha256):
        return None
    if untested is None:
        raise MmepackError(
            f"{what}: its manifest s3://{staging_bucket}/{manifest_key} records no passing test "
            f"run of these bytes (sha256 {sha256}); run the model's tests on them "
            "(`./pants test <model dir>:<model>` or `mmepack test-cases <artifact> <model dir>`) "
            "and publish to staging again, so the record travels with it; to promote untested "
            'bytes anyway, pass --untested="<reason>" (written into the manifest)'
        )
    print(
        f"mmepack: WARNING: promoting sha256 {sha256} to production with NO passing test run "
        f"on these bytes, by override (--untested): {untested!r}; the manifest records it",
        file=sys.stderr,
        flush=True,
    )
    record = manifest if isinstance(manifest, dict) else {}
    record["tested"] = {"passed": False, "override": True, "reason": untested, "sha256": sha256}
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _copy_manifest(
    s3: S3Client,
    staging_bucket: str,
    production_bucket: str,
    manifest_key: str,
    sha256: str,
    replacement: bytes | None = None,
) -> None:
    """Copy the staging manifest to production byte for byte (or write `replacement`, the
    manifest with an override recorded), only if none is there yet."""
    existing = _head(s3, production_bucket, manifest_key)
    if existing is not None and _stored_sha256(existing) == sha256:
        return
    source = _head(s3, staging_bucket, manifest_key)
    if source is None or _stored_sha256(source) != sha256:
        raise MmepackError(
            f"s3://{staging_bucket}/{manifest_key} is missing or describes other bytes than "
            f"sha256 {sha256}; re-publish the artifact to staging"
        )
    if existing is not None:
        raise MmepackError(
            f"s3://{production_bucket}/{manifest_key} describes other bytes (sha256 "
            f"{_stored_sha256(existing)}) than the object beside it (sha256 {sha256}); delete "
            "it and promote again"
        )
    if replacement is None:
        body = s3.get_object(Bucket=staging_bucket, Key=manifest_key, IfMatch=str(source["ETag"]))
        data = body["Body"].read()
    else:
        data = replacement
    try:
        _put_manifest_bytes(s3, production_bucket, manifest_key, data, sha256, True)
    except ClientError as exc:
        if not _precondition_failed(exc):
            raise
        _copy_manifest(s3, staging_bucket, production_bucket, manifest_key, sha256, replacement)

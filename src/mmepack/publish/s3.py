"""Publish artifacts to S3 (staging or production) and promote them from staging to production.

Rules:

- `main` publishes to the production bucket, every other branch to the staging bucket.
- A key is written once per content: re-publishing the same bytes is a no-op; different bytes
  under an existing production key are refused (bump `model_version.txt`); staging may be
  overwritten, and the result says so.
- Nothing partial is ever visible under the final key: the upload goes to
  `<prefix>/.incoming/<name>.<uuid>`, is checked, then copied server-side to the final key; the
  temporary key (and any unfinished multipart upload) is removed whatever happens.
- Every object carries its SHA-256 (S3-verified checksum and `mmepack-sha256` metadata) and a
  `<name>.manifest.json` provenance record beside it.
- Credentials never appear in messages.

The S3 client honours the usual AWS configuration, including `AWS_ENDPOINT_URL_S3` and
`AWS_ENDPOINT_URL` (botocore reads them itself), so a local S3-compatible server works unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
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

from mmepack.artifact.diff import describe_difference
from mmepack.errors import MmepackError
from mmepack.model.version import VERSION_FILE, artifact_name, parse_artifact_name
from mmepack.publish.provenance import file_sha256
from mmepack.publish.revision import from_ci_or_git

if TYPE_CHECKING:
    # From types-boto3[s3] (3rdparty/python), which Pants maps to boto3 for type checking.
    from types_boto3_s3 import S3Client  # pants: no-infer-dep
else:
    S3Client = Any

PRODUCTION_BRANCH = "main"
SHA256_METADATA = "mmepack-sha256"
MANIFEST_SUFFIX = ".manifest.json"
INCOMING_FOLDER = ".incoming"
RETRIES: dict[str, Any] = {"max_attempts": 5, "mode": "standard"}
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_MULTIPART_CHUNKSIZE = 16 * 1024 * 1024
# CI systems check out a detached HEAD and name the branch in one of these.
BRANCH_VARIABLES = ("GITHUB_REF_NAME", "CI_COMMIT_BRANCH", "BRANCH_NAME")
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


def make_client(region: str | None = None) -> S3Client:
    """An S3 client with standard-mode retries (5 attempts, or $AWS_MAX_ATTEMPTS; backoff)."""
    session = boto3.session.Session(region_name=region)
    retries = dict(RETRIES)
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "")
    if attempts.isdigit() and int(attempts) > 0:  # the standard AWS override, total attempts
        retries = {"total_max_attempts": int(attempts), "mode": "standard"}
    config = Config(retries=retries)  # type: ignore[arg-type]
    client: S3Client = session.client("s3", config=config)
    return client


def _secrets(client: S3Client | None) -> list[str]:
    """Every credential string that must never be printed."""
    found = [
        os.environ.get(name, "")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    ]
    if client is not None:
        try:
            signer = getattr(client, "_request_signer", None)
            credentials = getattr(signer, "_credentials", None)
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                found += [frozen.access_key or "", frozen.secret_key or "", frozen.token or ""]
        except Exception:  # noqa: BLE001 - scrubbing must never fail
            pass
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(text: str, client: S3Client | None = None) -> str:
    """`text` with every known credential replaced by `***`."""
    for secret in _secrets(client):
        text = text.replace(secret, "***")
    return text


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
    client: S3Client, bucket: str, key: str, record: dict[str, Any], sha256: str
) -> None:
    body = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    body_sha = hashlib.sha256(body).hexdigest()
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/json",
        ChecksumSHA256=_b64(body_sha),
        Metadata={SHA256_METADATA: sha256},
    )


def _abort_incomplete(client: S3Client, bucket: str, key: str) -> None:
    """Abort every unfinished multipart upload of `key` (s3transfer normally does this)."""
    response = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    for upload in response.get("Uploads", []):
        if upload.get("Key") == key and "UploadId" in upload:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])


def _cleanup_temporary(client: S3Client, bucket: str, key: str) -> None:
    for step in (_abort_incomplete, _delete_key):
        try:
            step(client, bucket, key)
        except Exception:  # noqa: BLE001 - best effort; the original error is what matters
            pass


def _delete_key(client: S3Client, bucket: str, key: str) -> None:
    client.delete_object(Bucket=bucket, Key=key)


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


def _ensure_manifest(
    client: S3Client, bucket: str, manifest_key: str, record: dict[str, Any], sha256: str
) -> None:
    """Write the manifest unless one for these bytes is already there."""
    head = _head(client, bucket, manifest_key)
    if head is None or _stored_sha256(head) != sha256:
        _put_manifest(client, bucket, manifest_key, record, sha256)


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

    `protect_existing` (True for production) refuses to replace a key holding other bytes;
    otherwise the key is replaced and the result's status is "replaced". `callback` receives
    the bytes sent, as boto3's upload callback does.
    """
    if not path.is_file():
        raise MmepackError(f"{path}: no such artifact; build it with `mmepack package`")
    model, version = parse_artifact_name(path)
    sha256 = file_sha256(path)
    recorded = provenance.get("sha256")
    if recorded and recorded != sha256:
        raise MmepackError(
            f"{path}: its sha256 {sha256} differs from the provenance record's {recorded}; the "
            "file changed after the record was made"
        )
    key = object_key(prefix, path.name)
    manifest_key = key + MANIFEST_SUFFIX
    record = {**provenance, "sha256": sha256, "key": key}
    if dry_run:
        echo(
            f"mmepack: dry run: would upload {path} ({path.stat().st_size} bytes, sha256 "
            f"{sha256}) to s3://{bucket}/{key} "
            f"({'refusing' if protect_existing else 'replacing'} a different existing object) "
            f"and its manifest to s3://{bucket}/{manifest_key}; nothing was sent"
        )
        return PublishResult("dry-run", bucket, key, sha256, manifest_key)

    s3 = client or make_client(region)
    url = f"s3://{bucket}/{key}"
    action = f"publishing {path.name} to {url}"
    try:
        _check_bucket(s3, bucket, action)
        existing = _head(s3, bucket, key)
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, action, bucket, s3) from None
    replaced = False
    if existing is not None:
        stored = _stored_sha256(existing)
        if stored == sha256:
            try:
                _ensure_manifest(s3, bucket, manifest_key, record, sha256)
            except (ClientError, BotoCoreError) as exc:
                raise explain(exc, action, bucket, s3) from None
            echo(f"mmepack: {url} unchanged (sha256 {sha256})")
            return PublishResult("unchanged", bucket, key, sha256, manifest_key)
        if protect_existing:
            members = _member_report(s3, bucket, key, path)
            raise _refusal(model, version, url, stored, sha256, members)
        replaced = True

    metadata = _metadata(record, sha256)
    config = _transfer_config(multipart_threshold)
    incoming = object_key(prefix, f"{INCOMING_FOLDER}/{path.name}.{uuid.uuid4().hex}")
    outcome = f"{url} was not changed."
    try:
        s3.upload_file(
            str(path),
            bucket,
            incoming,
            ExtraArgs={
                "ChecksumAlgorithm": "SHA256",
                "Metadata": metadata,
                "ContentType": "application/gzip",
            },
            Config=config,
            Callback=callback,
        )
        _verify_uploaded(s3, bucket, incoming, sha256, path, config)
        copy_args: dict[str, Any] = {
            "ChecksumAlgorithm": "SHA256",
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
            "ContentType": "application/gzip",
        }
        s3.copy(
            {"Bucket": bucket, "Key": incoming}, bucket, key, ExtraArgs=copy_args, Config=config
        )
        final = _head(s3, bucket, key)
        if final is None or _stored_sha256(final) != sha256:
            raise MmepackError(f"{action}: the copied object does not carry sha256 {sha256}")
        outcome = f"{url} is in place but its manifest is not; publish again to write the manifest."
        _put_manifest(s3, bucket, manifest_key, record, sha256)
    except MmepackError as exc:
        _cleanup_temporary(s3, bucket, incoming)
        raise MmepackError(scrub(f"{exc}\n{outcome}", s3)) from None
    except Exception as exc:
        _cleanup_temporary(s3, bucket, incoming)
        if isinstance(_find_cause(exc), (ClientError, BotoCoreError)):
            error = explain(exc, action, bucket, s3)
            raise MmepackError(f"{error}\n{outcome}") from None
        raise MmepackError(
            scrub(f"{action}: interrupted ({type(exc).__name__}: {exc})\n{outcome}", s3)
        ) from None
    except BaseException:
        _cleanup_temporary(s3, bucket, incoming)
        raise
    _cleanup_temporary(s3, bucket, incoming)
    status = "replaced" if replaced else "uploaded"
    note = f" (replaced an object with different content in {bucket})" if replaced else ""
    echo(f"mmepack: {status} {url}{note} (sha256 {sha256}) and {manifest_key}")
    return PublishResult(status, bucket, key, sha256, manifest_key)


def _part_size(chunksize: int, size: int) -> int:
    """The part size s3transfer uses: within S3's 5 MiB..5 GiB, doubled until <= 10,000 parts."""
    chunksize = min(max(chunksize, 5 * 1024 * 1024), 5 * 1024 * 1024 * 1024)
    while -(-size // chunksize) > 10_000:
        chunksize *= 2
    return chunksize


def _composite_sha256(path: Path, chunksize: int) -> str:
    """S3's checksum of a multipart upload: SHA-256 of the parts' SHA-256 digests."""
    size = path.stat().st_size
    chunksize = _part_size(chunksize, size)
    digests = b""
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunksize), b""):
            digests += hashlib.sha256(chunk).digest()
    return base64.b64encode(hashlib.sha256(digests).digest()).decode("ascii")


def _verify_uploaded(
    s3: S3Client, bucket: str, key: str, sha256: str, path: Path, config: TransferConfig
) -> None:
    """Check what S3 stored before it becomes visible under the final key."""
    head = _head(s3, bucket, key)
    size = path.stat().st_size
    if head is None:
        raise MmepackError(f"{path}: the upload to s3://{bucket}/{key} left no object")
    if head.get("ContentLength") != size:
        raise MmepackError(f"{path}: S3 stored {head.get('ContentLength')} bytes, expected {size}")
    checksum = str(head.get("ChecksumSHA256") or "").split("-")[0]
    if not checksum:
        return
    # A single-part upload reports the whole object's SHA-256, a multipart one the checksum of
    # its parts' checksums ("...-N"); S3 verified each part on receipt either way.
    if size >= config.multipart_threshold:
        expected = _composite_sha256(path, config.multipart_chunksize)
    else:
        expected = _b64(sha256)
    if checksum != expected:
        raise MmepackError(f"{path}: S3 reports SHA-256 {checksum}, expected {expected}")


# --------------------------------------------------------------------------- promote


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
) -> PublishResult:
    """Copy exactly the staging object of `model` `version` (and its manifest) to production.

    Server-side, pinned to the staging object's ETag; refused if production holds different
    bytes under that key, a no-op if it holds the same.
    """
    name = artifact_name(model, version)
    key = object_key(prefix, name)
    manifest_key = key + MANIFEST_SUFFIX
    source_url = f"s3://{staging_bucket}/{key}"
    url = f"s3://{production_bucket}/{key}"
    s3 = client or make_client(region)
    action = f"promoting {source_url} to {url}"
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
        target = _head(s3, production_bucket, key)
        if target is not None:
            stored = _stored_sha256(target)
            if stored != sha256:
                raise _refusal(model, version, url, stored, sha256)
            _copy_manifest(s3, staging_bucket, production_bucket, manifest_key, sha256)
            echo(f"mmepack: {url} unchanged (sha256 {sha256})")
            return PublishResult("unchanged", production_bucket, key, sha256, manifest_key)
        if dry_run:
            echo(f"mmepack: dry run: would copy {source_url} (sha256 {sha256}) to {url}")
            return PublishResult("dry-run", production_bucket, key, sha256, manifest_key)
        s3.copy(
            {"Bucket": staging_bucket, "Key": key},
            production_bucket,
            key,
            ExtraArgs={
                "CopySourceIfMatch": str(source["ETag"]),
                "ChecksumAlgorithm": "SHA256",
                "Metadata": dict(source.get("Metadata", {})),
                "MetadataDirective": "REPLACE",
                "ContentType": str(source.get("ContentType") or "application/gzip"),
            },
            Config=_transfer_config(multipart_threshold),
        )
        copied = _head(s3, production_bucket, key)
        if copied is None or _stored_sha256(copied) != sha256:
            raise MmepackError(f"{action}: the copy in production does not carry sha256 {sha256}")
        _copy_manifest(s3, staging_bucket, production_bucket, manifest_key, sha256)
    except MmepackError as exc:
        raise MmepackError(scrub(str(exc), s3)) from None
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, action, production_bucket, s3) from None
    echo(f"mmepack: promoted {source_url} to {url} (sha256 {sha256})")
    return PublishResult("promoted", production_bucket, key, sha256, manifest_key)


def _copy_manifest(
    s3: S3Client, staging_bucket: str, production_bucket: str, manifest_key: str, sha256: str
) -> None:
    """Copy the staging manifest to production byte for byte, unless it is already there."""
    existing = _head(s3, production_bucket, manifest_key)
    if existing is not None and _stored_sha256(existing) == sha256:
        return
    source = _head(s3, staging_bucket, manifest_key)
    if source is None or _stored_sha256(source) != sha256:
        raise MmepackError(
            f"s3://{staging_bucket}/{manifest_key} is missing or describes other bytes than "
            f"sha256 {sha256}; re-publish the artifact to staging"
        )
    s3.copy_object(
        CopySource={"Bucket": staging_bucket, "Key": manifest_key},
        CopySourceIfMatch=str(source["ETag"]),
        Bucket=production_bucket,
        Key=manifest_key,
        ChecksumAlgorithm="SHA256",
        MetadataDirective="COPY",
    )

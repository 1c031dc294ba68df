"""`mmepack capacity`: size an endpoint from what the model tests measured.

Reads capacity records and manifests (files, folders such as dist/, or an S3 bucket prefix),
takes the instance type from the library's table (or its figures from flags), and prints how
many of the models stay resident, which go first under a traffic mix (the load test's
`--mix TARGET_MODEL=SHARE` format) and the endpoint's shared-memory settings.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mmepack.capacity.instances import GB, GIB, INSTANCE_TYPES, SOURCE, InstanceType
from mmepack.capacity.plan import format_plan, plan
from mmepack.capacity.record import CAPACITY_SUFFIX, read_capacity
from mmepack.errors import MmepackError

MANIFEST_SUFFIX = ".manifest.json"  # mmepack.publish.s3's, without importing boto3 here


def _from_manifest(data: dict[str, Any]) -> dict[str, Any] | None:
    block = data.get("capacity")
    if not isinstance(block, dict) or not isinstance(data.get("artifact"), str):
        return None
    return {**block, "artifact": data["artifact"], "sha256": data.get("sha256")}


def records_from_paths(paths: list[Path]) -> list[dict[str, Any]]:
    """Every record under the paths; a manifest counts through its capacity block. For one
    artifact the newest record wins."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.rglob(f"*{CAPACITY_SUFFIX}"))
            files += sorted(path.rglob(f"*{MANIFEST_SUFFIX}"))
        elif path.is_file():
            files.append(path)
        else:
            raise MmepackError(f"{path}: no such file or folder; give dist/ or record files")
    found: list[dict[str, Any]] = []
    for file in files:
        data = read_capacity(file)
        if data is None:
            continue
        record = _from_manifest(data) if file.name.endswith(MANIFEST_SUFFIX) else data
        if record is not None:
            found.append(record)
    return _newest(found)


def _newest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_artifact: dict[str, dict[str, Any]] = {}
    for record in records:
        name = record["artifact"]
        old = by_artifact.get(name)
        if old is None or str(record.get("measured_at", "")) > str(old.get("measured_at", "")):
            by_artifact[name] = record
    return [by_artifact[name] for name in sorted(by_artifact)]


def records_from_bucket(bucket: str, prefix: str, region: str | None) -> list[dict[str, Any]]:
    """The capacity blocks of the manifests under `s3://bucket/prefix` (bounded listing)."""
    from mmepack.publish.s3 import make_client

    client = make_client(region)
    found: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page_number, page in enumerate(paginator.paginate(Bucket=bucket, Prefix=prefix)):
        if page_number >= 100:
            raise MmepackError(
                f"s3://{bucket}/{prefix}: more than 100 pages of objects; give a narrower --prefix"
            )
        for item in page.get("Contents", []):
            key = item["Key"]
            if not key.endswith(MANIFEST_SUFFIX):
                continue
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                data = json.loads(body)
            except ValueError:
                continue
            record = _from_manifest(data) if isinstance(data, dict) else None
            if record is not None:
                found.append(record)
    return _newest(found)


def instance_type(args: argparse.Namespace) -> InstanceType:
    known = INSTANCE_TYPES.get(args.instance_type)
    if known is None and args.memory_gb is None:
        raise MmepackError(
            f"--instance-type {args.instance_type}: not in mmepack's table ("
            + ", ".join(INSTANCE_TYPES)
            + "); give its figures with --memory-gb (and --gpu-memory-gb, --disk-gb)"
        )
    base = known or InstanceType(args.instance_type, 0, 0, 0, None)
    if args.memory_gb is not None:
        base = replace(base, memory_bytes=int(args.memory_gb * GIB))
    if args.gpu_memory_gb is not None:
        base = replace(base, gpu_memory_bytes=int(args.gpu_memory_gb * GIB))
    if args.disk_gb is not None:
        base = replace(base, disk_bytes=int(args.disk_gb * GB))
    return base


def _cmd_capacity(args: argparse.Namespace) -> int:
    from mmepack.loadtest.plan import parse_mix

    if args.bucket:
        records = records_from_bucket(args.bucket, args.prefix, args.region)
    else:
        records = records_from_paths(args.paths or [Path("dist")])
    if not records:
        where = f"s3://{args.bucket}/{args.prefix}" if args.bucket else "the paths given"
        raise MmepackError(
            f"no capacity records or manifests with a capacity block in {where}; run the "
            "models' tests first (`./pants test`, or `mmepack test-cases`)"
        )
    instance = instance_type(args)
    mix = {s.target: s.weight for s in parse_mix(args.mix)} if args.mix else None
    if mix:
        unknown = sorted(set(mix) - {r["artifact"] for r in records})
        if unknown:
            raise MmepackError(
                f"--mix: {', '.join(unknown)} have no capacity record among "
                + ", ".join(r["artifact"] for r in records)
            )
    result = plan(records, instance, mix)
    if args.json:
        out = asdict(result)
        out["instance_source"] = SOURCE if instance.name in INSTANCE_TYPES else "flags"
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(format_plan(result, mix))
        print(
            f"  instance figures: "
            f"{SOURCE if instance.name in INSTANCE_TYPES else 'from the flags'}"
        )
    return 0


def add_capacity_command(commands: Any) -> None:
    parser = commands.add_parser(
        "capacity",
        help="how many tested models fit an instance type, which go first, the shm they need",
    )
    parser.add_argument(
        "paths",
        type=Path,
        nargs="*",
        metavar="PATH",
        help="capacity records, manifests, or folders holding them (default: dist)",
    )
    parser.add_argument(
        "--instance-type",
        required=True,
        help=f"e.g. ml.g5.xlarge; known: {', '.join(INSTANCE_TYPES)}",
    )
    parser.add_argument("--memory-gb", type=float, help="host memory in GiB (unknown types)")
    parser.add_argument("--gpu-memory-gb", type=float, help="GPU memory in GiB; 0: no GPU")
    parser.add_argument("--disk-gb", type=float, help="model volume in GB (EBS-only types)")
    parser.add_argument(
        "--mix",
        action="append",
        metavar="TARGET_MODEL=SHARE",
        help="traffic share of a model, as for `mmepack loadtest` (repeat; default: equal)",
    )
    parser.add_argument("--bucket", help="read the manifests under s3://BUCKET/--prefix")
    parser.add_argument("--prefix", default="", help="key prefix with --bucket")
    parser.add_argument("--region", help="AWS region with --bucket")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(run=_cmd_capacity)

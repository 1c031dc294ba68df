"""`mmepack` command line: every capability of the library without Pants.

The Pants plugin runs these same commands inside its sandboxes, so what a user runs by hand and
what CI runs are one code path.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mmepack import __version__, passthrough
from mmepack.artifact.env_layout import EnvLayout, check_layout_name
from mmepack.build import package_model
from mmepack.capacity.command import add_capacity_command
from mmepack.cases.command import add_cases_commands
from mmepack.dev.command import add_dev_command
from mmepack.endpoint.cli import add_endpoint_command
from mmepack.environment.cache import EnvCache
from mmepack.environment.command import (
    add_build_env_arguments,
    add_env_options,
    cache_from_args,
    options_from_args,
    run_build_env,
)
from mmepack.environment.request import DEFAULT_PYTHON
from mmepack.errors import Interrupted, MmepackError
from mmepack.extras import require_serve
from mmepack.loadtest.cli import add_loadtest_command
from mmepack.model.repository import read_model_directory
from mmepack.model.weights import describe_pull, pull_weights, tracked_files, verify_weights
from mmepack.names import CONFIG_FILE, REQUIREMENTS_FILE, STUB_NAME, VERSION_FILE
from mmepack.redact import redact
from mmepack.scaffold import SCAFFOLD_PYTHON
from mmepack.triton.target import DEFAULT_TRITON_VERSION, TargetServer
from mmepack.validate import (
    Problem,
    count_errors,
    discover_model_directories,
    validate_model_directory,
    validate_tree,
)
from mmepack_contract import ERROR_PREFIX, PACKAGE_REPORT_FILE, S3_PREFIX_VARIABLE


def _cmd_package(args: argparse.Namespace) -> int:
    from mmepack.artifact.report import write_package_report
    from mmepack.artifact.size_report import size_lines
    from mmepack.model.build_file import model_python

    # A given environment states its own Python; only one to build needs the model's BUILD
    # file and pants.toml, which a Pants sandbox does not hold.
    python = args.python if args.env is not None else model_python(args.model_dir, args.python)
    result = package_model(
        args.model_dir,
        args.output_dir,
        env_archive=args.env,
        env_python=args.env_python,
        stub=args.stub,
        pull=args.pull,
        repo_root=args.repo_root,
        python=python,
        env_options=options_from_args(args),
        env_cache=cache_from_args(args),
        dvc_cache=args.dvc_cache,
        checkout=args.checkout,
        layout=check_layout_name(args.env_layout),
    )
    print(
        f"mmepack: wrote {result.path} ({result.size / 1e6:.1f} MB, {len(result.members)} entries)"
    )
    for line in size_lines(result):
        print(line)
    if args.report is not None:
        write_package_report(result, args.report)
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    from mmepack.scaffold import new_model

    lines = new_model(
        args.model_dir,
        python=args.python,
        repo_root=args.repo_root,
        steps=args.step,
        inputs=args.input,
        outputs=args.output,
    )
    for line in lines:
        print(line)
    return 0


def _cmd_pull_weights(args: argparse.Namespace) -> int:
    directory = read_model_directory(args.model_dir)
    files = tracked_files(args.model_dir)
    pulled = pull_weights(
        directory.name, args.repo_root, files, cache_dir=args.dvc_cache, checkout=args.checkout
    )
    verify_weights(directory.name, files)
    if pulled is not None:
        print(f"mmepack: {describe_pull(directory.name, pulled)}")
    for tracked in files:
        print(f"mmepack: {tracked.path} ok (md5 {tracked.md5})")
    return 0


def _cmd_add_weights(args: argparse.Namespace) -> int:
    from mmepack.model.dvc_commands import add_weights

    for line in add_weights(args.paths, args.repo_root):
        print(f"mmepack: {line}")
    return 0


def _cmd_push_weights(args: argparse.Namespace) -> int:
    from mmepack.model.dvc_commands import push_weights

    print(f"mmepack: {push_weights(args.model_dirs, args.repo_root)}")
    return 0


def _cmd_check_weights(args: argparse.Namespace) -> int:
    """Fail when a DVC-tracked working copy differs from its record (what package and lint
    report), so a rewritten weight is never silently replaced by the recorded one."""
    from mmepack.model.drift import find_drift

    files = tracked_files(args.model_dir)
    drifted = find_drift(files)
    if drifted:
        raise MmepackError(
            f"{args.model_dir}: {len(drifted)} DVC-tracked file(s) differ from their record:\n  "
            + "\n  ".join(d.describe() for d in drifted)
        )
    print(f"mmepack: {len(files)} DVC-tracked file(s) of {args.model_dir}: no working copy differs")
    return 0


def _cmd_lock(args: argparse.Namespace) -> int:
    """Lock every given model directory (or every model under a given tree)."""
    from mmepack.environment.lock import lock_model, lock_path, read_lock
    from mmepack.model.build_file import build_file_python, pants_toml_python

    targets: list[Path] = []
    for path in args.paths:
        if (path / REQUIREMENTS_FILE).is_file():
            targets.append(path)
        elif path.is_dir():
            targets.extend(
                d for d in discover_model_directories(path) if (d / REQUIREMENTS_FILE).is_file()
            )
        else:
            raise MmepackError(
                f"{path}: not a directory; expected a model directory or a tree of them"
            )
    if not targets:
        raise MmepackError(
            f"no {REQUIREMENTS_FILE} found under {', '.join(map(str, args.paths))}; only models "
            "with Python steps have something to lock"
        )
    for model_dir in targets:
        existing = lock_path(model_dir / REQUIREMENTS_FILE)
        # The Python package builds with: the flag, the BUILD file's python_version or
        # pants.toml's, then the existing lock's, then the library's default.
        python = (
            args.python
            or build_file_python(model_dir)
            or pants_toml_python(model_dir)
            or (read_lock(existing).python if existing.is_file() else None)
            or DEFAULT_PYTHON
        )
        lock = lock_model(
            model_dir,
            python,
            glibc=args.glibc,
            target=TargetServer(triton_version=args.triton_version),
            log=lambda m: print(f"mmepack: {m}", file=sys.stderr),
        )
        pins = ", ".join(f"{p.name}=={p.version}" for p in lock.pins)
        print(f"mmepack: wrote {lock.path} (Python {lock.python}, {lock.platform}): {pins}")
    return 0


def _cmd_env_cache(args: argparse.Namespace) -> int:
    cache = EnvCache(args.cache_dir) if args.cache_dir else EnvCache()
    if args.action == "list":
        entries = cache.entries()
        for entry in entries:
            manifest = entry.manifest
            requirements = manifest.get("key", {}).get("requirements", "").strip().splitlines()
            age_days = (time.time() - entry.last_used) / 86400
            print(
                f"{entry.digest[:12]}  Python {manifest.get('python_version', '?'):<7} "
                f"{entry.packed_bytes / 1e6:6.1f} MB  used {age_days:5.1f} days ago  "
                f"{', '.join(requirements) or '(numpy only)'}"
            )
        total = sum(e.packed_bytes for e in entries)
        print(f"mmepack: {len(entries)} environments, {total / 1e6:.1f} MB in {cache.root}")
        stale = cache.stale_staging()
        if stale:
            print(
                f"mmepack: {len(stale)} unfinished builds of processes that are gone "
                f"({', '.join(p.name for p in stale)}); `mmepack env-cache prune` removes them"
            )
        return 0
    stale = cache.stale_staging()
    removed = cache.prune(args.unused_days * 86400, dry_run=args.dry_run)
    if stale:
        print(
            f"mmepack: {'would remove' if args.dry_run else 'removed'} {len(stale)} unfinished "
            "builds of processes that are gone"
        )
    verb = "would remove" if args.dry_run else "removed"
    freed = sum(e.packed_bytes for e in removed)
    print(f"mmepack: {verb} {len(removed)} environments ({freed / 1e6:.1f} MB) from {cache.root}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    require_serve("serve", f"./pants run src/mmepack/endpoint/__main__.py -- {args.artifact}")
    try:
        from mmepack.testing import serve_artifact  # pants: no-infer-dep
    except ImportError as exc:
        # The CLI PEX leaves the server packages out to stay small, so say where they are.
        raise MmepackError(
            f"`mmepack serve` needs nvidia-pytriton, tritonclient[http], onnxruntime-gpu and "
            f"mmepack.testing, which this installation (e.g. the CLI PEX) lacks ({exc}); from a "
            "checkout, serve it with `./pants run src/mmepack/endpoint/__main__.py -- "
            f"{args.artifact}`, or run `PYTHONPATH=src python -m mmepack serve {args.artifact}` "
            "with a Python that has 3rdparty/python/requirements.txt installed"
        ) from None

    with serve_artifact(args.artifact) as served:
        print(
            f"mmepack: serving model '{served.model_name}' at http://{served.url} on "
            f"{served.device}; press Ctrl-C to stop",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    """Print every problem of every given model directory or tree; fail only on errors."""
    problems: list[Problem] = []
    models = 0
    for path in args.paths:
        if (path / VERSION_FILE).is_file() or any(path.glob(f"*/{CONFIG_FILE}")):
            models += 1
            problems.extend(validate_model_directory(path))
        else:
            models += len(discover_model_directories(path)) if path.is_dir() else 0
            problems.extend(validate_tree(path))
    for problem in problems:
        print(problem)
    errors = count_errors(problems)
    print(
        f"{len(problems)} problems in {models} models "
        f"({errors} errors, {len(problems) - errors} warnings)"
    )
    return 1 if errors else 0


def _check_artifacts_exist(artifacts: Sequence[Path]) -> None:
    """Refuse missing artifacts before anything else, naming each the way it arrived.

    A shell leaves a glob that matches nothing as it is (`dist/mme/*.tar.gz`), and a path may
    name a build that never happened; neither is a badly named artifact.
    """
    for artifact in artifacts:
        if artifact.is_file():
            continue
        if any(ch in artifact.name for ch in "*?["):
            raise MmepackError(
                f"{artifact}: no file matches this pattern; build the artifacts first "
                "(`mmepack package` or `./pants package`) or check the folder"
            )
        raise MmepackError(
            f"{artifact}: no such artifact file; build it first (`mmepack package` or "
            "`./pants package`) or check the path"
        )


def _write_report(path: Path | None, entries: list[dict[str, object]]) -> None:
    """The machine-readable account of what a publish or promote did (`--report`), which the
    Pants plugin reads instead of scraping the printed lines."""
    if path is None:
        return
    import json

    from mmepack.files import atomic_path

    with atomic_path(path) as partial:
        partial.write_text(json.dumps({"results": entries}, indent=2) + "\n", encoding="utf-8")


def _cmd_publish(args: argparse.Namespace) -> int:
    from mmepack.capacity.record import capacity_block
    from mmepack.model.version import parse_artifact_name
    from mmepack.publish.provenance import build_provenance, git_commit
    from mmepack.publish.revision import branch_name
    from mmepack.publish.s3 import choose_bucket, publish_artifact
    from mmepack.publish.tested import DEFAULT_RECORD_DIRS, tested_entry

    branch = branch_name(args.branch)
    _check_artifacts_exist(args.artifacts)
    bucket = choose_bucket(branch, args.staging_bucket, args.production_bucket)
    production = bucket == args.production_bucket
    print(
        f"mmepack: branch '{branch}' publishes to "
        f"{'production' if production else 'staging'} bucket '{bucket}'"
    )
    commit = args.commit or git_commit()
    dirty = None if args.git_dirty is None else args.git_dirty == "true"
    record_dirs = args.test_records or list(DEFAULT_RECORD_DIRS)
    planned = []
    for artifact in args.artifacts:
        model, _ = parse_artifact_name(artifact)
        model_dir = args.models_root / model
        provenance = build_provenance(
            artifact,
            model_dir=model_dir if model_dir.is_dir() else None,
            commit=commit,
            dirty=dirty,
        )
        sha256 = str(provenance["sha256"])
        capacity = capacity_block(artifact, sha256, args.capacity_records)
        if capacity is not None:
            provenance["capacity"] = capacity
        if production:
            # Every artifact is judged before any is sent: a refusal uploads nothing.
            provenance["tested"] = tested_entry(
                artifact, sha256, record_dirs, untested=args.untested, where="production"
            )
        else:
            from mmepack.publish.tested import find_passing_record

            # Staging takes untested bytes; a record found travels on, for `promote`.
            record = find_passing_record(artifact, sha256, record_dirs)
            provenance["tested"] = (
                {"passed": True, "sha256": sha256, "cases": record.get("cases", [])}
                if record is not None
                else {"passed": False, "sha256": sha256}
            )
        planned.append((artifact, provenance))
    entries: list[dict[str, object]] = []
    try:
        for artifact, provenance in planned:
            result = publish_artifact(
                artifact,
                bucket,
                args.prefix,
                provenance=provenance,
                protect_existing=production,
                region=args.region,
                dry_run=args.dry_run,
            )
            entries.append(
                {
                    "artifact": str(artifact),
                    "status": result.status,
                    "url": result.url,
                    "sha256": result.sha256,
                    "production": production,
                    "tested": provenance["tested"],
                }
            )
    finally:
        _write_report(args.report, entries)
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from mmepack.publish.s3 import promote

    for name, value in (
        ("--staging-bucket", args.staging_bucket),
        ("--production-bucket", args.production_bucket),
    ):
        if not value:
            raise MmepackError(f"promote needs {name} (or its MMEPACK_*_BUCKET variable)")
    result = promote(
        args.model,
        args.version,
        args.staging_bucket,
        args.production_bucket,
        args.prefix,
        region=args.region,
        dry_run=args.dry_run,
        untested=args.untested,
    )
    _write_report(
        args.report,
        [{"status": result.status, "url": result.url, "sha256": result.sha256}],
    )
    return 0


def _add_s3_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--staging-bucket",
        default=os.environ.get("MMEPACK_STAGING_BUCKET"),
        help="default: $MMEPACK_STAGING_BUCKET",
    )
    parser.add_argument(
        "--production-bucket",
        default=os.environ.get("MMEPACK_PRODUCTION_BUCKET"),
        help="default: $MMEPACK_PRODUCTION_BUCKET",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get(S3_PREFIX_VARIABLE, ""),
        help="key prefix, e.g. mme/ (default: $MMEPACK_S3_PREFIX)",
    )
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
    parser.add_argument(
        "--untested",
        metavar="REASON",
        help="production only: send bytes that no passing test run covers; loud, and REASON is "
        "written into the manifest (default: refuse them)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="also write what happened to each artifact (uploaded, unchanged, ...) as JSON here",
    )


def _add_pull_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dvc-cache",
        type=Path,
        help="DVC cache shared by every model and run (default: $MMEPACK_DVC_CACHE or "
        "~/.cache/mmepack/dvc)",
    )
    parser.add_argument(
        "--checkout",
        type=Path,
        help="the checkout that --repo-root was copied from (a Pants sandbox): local-folder DVC "
        "remotes are read there",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmepack",
        description="Package Triton model repositories as SageMaker multi-model artifacts.",
    )
    parser.add_argument("--version", action="version", version=f"mmepack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    package = commands.add_parser(
        "package", help="write <model>_<version>.tar.gz for one model directory"
    )
    package.add_argument("model_dir", type=Path, help="e.g. models/screen_detector")
    package.add_argument("--output-dir", type=Path, default=Path("dist/mme"))
    package.add_argument(
        "--env", type=Path, help="an already built python_env.tar.gz (default: build one)"
    )
    package.add_argument(
        "--stub", type=Path, help=f"the {STUB_NAME} to ship with --env (default: chosen for it)"
    )
    package.add_argument(
        "--env-python",
        help="the Python version --env was built for, as its build report states it "
        "(python_version, e.g. 3.12.1; default: read from the archive)",
    )
    package.add_argument(
        "--report",
        type=Path,
        help=f"also write a JSON report of the package step here (e.g. {PACKAGE_REPORT_FILE}): "
        "artifacts with bytes and sha256, weights, size by part, warnings",
    )
    package.add_argument("--pull", action="store_true", help="`dvc pull` the model's weights first")
    package.add_argument("--repo-root", type=Path, default=Path("."))
    package.add_argument(
        "--env-layout",
        default=EnvLayout.default().value,
        choices=[layout.value for layout in EnvLayout],
        help="how the Python environment travels: one uncompressed tar for all steps "
        f"(default, {EnvLayout.default().value}), one tar.gz for all steps, or a tar.gz per step "
        "as before (per-step)",
    )
    _add_pull_options(package)
    add_env_options(package)
    # No default Python here: the model's BUILD file (or pants.toml) says it, as for Pants.
    package.set_defaults(run=_cmd_package, python=None)

    new = commands.add_parser(
        "new",
        help="create a working model directory (an ensemble of the steps you name) to start from",
    )
    new.add_argument("model_dir", type=Path, help="e.g. models/tiny_adder")
    new.add_argument(
        "--step",
        action="append",
        default=[],
        metavar="NAME:KIND",
        help="a step of the ensemble, in order; KIND is python or onnx, e.g. --step tok:python "
        "--step clf:onnx --step post:python (default: preprocess:python, model:onnx, "
        "postprocess:python)",
    )
    new.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME:TYPE:DIMS",
        help="an input of the ensemble, e.g. TEXT:TYPE_STRING:1 or IMAGE:TYPE_UINT8:3,32,32 "
        "(DIMS without the batch dimension; default X:TYPE_FP32:4)",
    )
    new.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="NAME:TYPE:DIMS",
        help="an output of the ensemble, e.g. LABEL:TYPE_STRING:1 (default Y:TYPE_FP32:4)",
    )
    new.add_argument("--python", help=f"environment Python (default {SCAFFOLD_PYTHON})")
    new.add_argument("--repo-root", type=Path, default=Path("."))
    new.set_defaults(run=_cmd_new)

    pull = commands.add_parser("pull-weights", help="dvc pull and verify a model's weights")
    pull.add_argument("model_dir", type=Path)
    pull.add_argument("--repo-root", type=Path, default=Path("."))
    _add_pull_options(pull)
    pull.set_defaults(run=_cmd_pull_weights)

    add = commands.add_parser(
        "add-weights",
        help="record weight files' bytes in .dvc files (DVC's add, run by mmepack: no dvc needed)",
    )
    add.add_argument("paths", type=Path, nargs="+", metavar="FILE")
    add.add_argument("--repo-root", type=Path, default=Path("."))
    add.set_defaults(run=_cmd_add_weights)

    push = commands.add_parser(
        "push-weights",
        help="send recorded weights to the default DVC remote (DVC's push, run by mmepack)",
    )
    push.add_argument(
        "model_dirs",
        type=Path,
        nargs="*",
        metavar="MODEL_DIR",
        help="push only these models' weights (default: every .dvc file)",
    )
    push.add_argument("--repo-root", type=Path, default=Path("."))
    push.set_defaults(run=_cmd_push_weights)

    check_weights = commands.add_parser(
        "check-weights",
        help="fail if a DVC-tracked working copy differs from its .dvc record (not recorded)",
    )
    check_weights.add_argument("model_dir", type=Path)
    check_weights.set_defaults(run=_cmd_check_weights)

    env = commands.add_parser(
        "build-env", help=f"conda-pack an environment from {REQUIREMENTS_FILE}"
    )
    add_build_env_arguments(env)
    env.set_defaults(run=run_build_env)

    lock = commands.add_parser(
        "lock",
        help=f"pin {REQUIREMENTS_FILE} to exact versions and sha256 hashes (requirements.lock)",
    )
    lock.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="e.g. models/ or models/screen_detector"
    )
    lock.add_argument(
        "--python",
        help="environment Python, e.g. 3.12 (default: the model's BUILD python_version, else "
        f"[mmepack].python_version in pants.toml, else the existing lock's, else {DEFAULT_PYTHON})",
    )
    lock.add_argument(
        "--glibc",
        default="2.35",
        help="glibc of the target hosts; wheels up to manylinux_<this> are allowed (default 2.35)",
    )
    lock.add_argument(
        "--triton-version",
        default=DEFAULT_TRITON_VERSION,
        help="Triton server the environment is for: its numpy requirement joins the resolution "
        f"(default {DEFAULT_TRITON_VERSION})",
    )
    lock.set_defaults(run=_cmd_lock)

    env_cache = commands.add_parser(
        "env-cache", help="list or prune the content-addressed environment cache"
    )
    env_cache.add_argument("action", choices=("list", "prune"))
    env_cache.add_argument(
        "--unused-days",
        type=float,
        default=30.0,
        help="prune: remove environments not used for this many days (default 30)",
    )
    env_cache.add_argument("--dry-run", action="store_true", help="prune: only say what would go")
    env_cache.add_argument(
        "--cache-dir", type=Path, help="default: $MMEPACK_ENV_CACHE or ~/.cache/mmepack/envs"
    )
    env_cache.set_defaults(run=_cmd_env_cache)

    serve = commands.add_parser("serve", help="run a local Triton server on an artifact")
    serve.add_argument("artifact", type=Path)
    serve.set_defaults(run=_cmd_serve)

    add_endpoint_command(commands)
    add_loadtest_command(commands)
    add_cases_commands(commands)
    add_capacity_command(commands)
    add_dev_command(commands)

    validate = commands.add_parser(
        "validate",
        help="check model directories (or trees of them) without packaging; exit 1 on errors",
    )
    validate.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="e.g. models/ or models/screen_detector"
    )
    validate.set_defaults(run=_cmd_validate)

    publish = commands.add_parser(
        "publish",
        help="upload artifacts to S3: branch main to the production bucket, others to staging",
    )
    publish.add_argument("artifacts", type=Path, nargs="+", metavar="ARTIFACT")
    publish.add_argument(
        "--branch", help="default: $GITHUB_REF_NAME, $CI_COMMIT_BRANCH, $BRANCH_NAME, then git"
    )
    publish.add_argument(
        "--commit",
        help="git commit recorded in the manifest (default: $GITHUB_SHA, $CI_COMMIT_SHA, "
        "$GIT_COMMIT, then `git rev-parse HEAD`)",
    )
    publish.add_argument(
        "--git-dirty",
        choices=("true", "false"),
        help="whether the tree the artifacts were built from had uncommitted changes, recorded "
        "in the manifest (default: false when a CI commit variable is set, else `git status "
        "--porcelain` here); `./pants publish` passes its build root's state, since its "
        "sandbox has no git",
    )
    publish.add_argument(
        "--models-root",
        type=Path,
        default=Path("models"),
        help="where <model>/ folders are, to record DVC weight md5s (default: models)",
    )
    publish.add_argument(
        "--test-records",
        type=Path,
        action="append",
        metavar="DIR",
        help="where to look (recursively) for <artifact>.tested.json test records besides the "
        "artifact's own folder; repeatable (default: dist, where `./pants test` writes them)",
    )
    publish.add_argument(
        "--capacity-records",
        type=Path,
        action="append",
        metavar="DIR",
        help="where to look for the test runs' <artifact>.capacity.json, whose figures for the "
        "same bytes go into the manifest's capacity block (repeat; default: beside the "
        "artifact and under dist/)",
    )
    _add_s3_options(publish)
    publish.set_defaults(run=_cmd_publish)

    promote = commands.add_parser(
        "promote", help="copy a published version from the staging to the production bucket"
    )
    promote.add_argument("model")
    promote.add_argument("version")
    _add_s3_options(promote)
    promote.set_defaults(run=_cmd_promote)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Under Pants, the machine's variables come from a file, not the environment.
        passthrough.apply()
        code: int = args.run(args)
        return code
    except MmepackError as exc:
        print(f"{ERROR_PREFIX} {redact(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        # Bad input reaches the file system in ways no check can foresee (a full disk, a file
        # that vanished, a name too long); say which file and what the system said, not a
        # traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(
            redact(
                f"{ERROR_PREFIX} {where}{exc.strerror or exc}; check that the path exists, is "
                "readable and that its disk has space, then run again"
            ),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:
        # An Interrupted says what state it left; a bare Ctrl-C has nothing to add.
        detail = f": {redact(str(exc))}" if isinstance(exc, Interrupted) else ""
        print(f"mmepack: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

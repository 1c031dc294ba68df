"""The whole packaging path for one model directory, shared by the CLI and the Pants plugin.

Order matters for the user: the full static validation (the same as `mmepack validate`, so
package never accepts what validate refuses) and the other cheap checks (weights, whether the
target server can run the environment's Python) run before the minutes-long environment build,
so a typo fails in a second rather than after pip.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from mmepack.artifact.bytecode import archive_python, minor_version
from mmepack.artifact.env_layout import EnvLayout
from mmepack.artifact.size_report import ENV_DOMINATES, environment_share
from mmepack.artifact.unused_requirements import environment_distributions, unused_requirements
from mmepack.artifact.writer import COMPRESS_LEVEL, PackageResult, write_artifact
from mmepack.environment.build import build_environment
from mmepack.environment.cache import EnvCache
from mmepack.environment.request import DEFAULT_PYTHON, EnvOptions, EnvRequest
from mmepack.errors import MmepackError
from mmepack.files import scratch_dir
from mmepack.model.config import data_type_name
from mmepack.model.repository import ModelDirectory
from mmepack.model.version import artifact_name, read_model_version
from mmepack.model.weights import describe_pull, pull_weights, verify_weights
from mmepack.names import ENV_ARCHIVE, REQUIREMENTS_FILE, STUB_NAME
from mmepack.validate import Validation, validate_model

_SHOWN_PROBLEMS = 20


def python_tensor_types(directory: ModelDirectory) -> tuple[str, ...]:
    """The data types the environment's Python steps receive and return, from their configs."""
    types: list[str] = []
    for model in directory.python_env_models():
        for tensor in [*model.config.input, *model.config.output]:
            name = data_type_name(tensor.data_type)
            if name not in types:
                types.append(name)
    return tuple(types)


def _remove_previous_artifact(model_dir: Path, output_dir: Path, validation: Validation) -> None:
    """Delete the artifact an earlier build of this model and version left in `output_dir`.

    Otherwise a build that fails leaves the previous tar in place under the same name, ready to
    be published as if it were this build's. The names come from the validation that just read
    the model; unknown names (no readable version) are skipped, and an output folder that does
    not exist yet (a Pants sandbox's) holds nothing to remove.
    """
    if not output_dir.is_dir():
        return
    try:
        version = read_model_version(model_dir)
    except MmepackError:
        return
    names = {model_dir.resolve().name}
    if validation.deployable is not None:
        names.add(validation.deployable)
    for name in sorted(names):
        previous = output_dir / artifact_name(name, version)
        try:
            present = previous.is_file() and not previous.is_symlink()
        except OSError:  # a name the file system cannot hold (too long) was never written
            continue
        if present:
            try:
                previous.unlink()
            except OSError as exc:
                raise MmepackError(
                    f"{previous}: cannot remove the previous artifact before building "
                    f"({exc.strerror}); delete it by hand, then package again"
                ) from None


def package_model(
    model_dir: Path,
    output_dir: Path,
    *,
    env_archive: Path | None = None,
    env_python: str | None = None,
    stub: Path | None = None,
    pull: bool = False,
    repo_root: Path | None = None,
    python: str | None = None,
    env_options: EnvOptions | None = None,
    env_cache: EnvCache | None = None,
    dvc_cache: Path | None = None,
    checkout: Path | None = None,
    layout: EnvLayout = EnvLayout.default(),
    compress_level: int = COMPRESS_LEVEL,
) -> PackageResult:
    """Check, optionally pull weights, build the environment if none is given, write the tar.

    One pass through the model: validation parses every config once and hands the parsed
    model, and the `.dvc` records it read, to the rest. What the environment holds comes from
    the model (its requirements.txt, `python`, default `DEFAULT_PYTHON`; a given `env_archive`
    has its own Python, `env_python` as its build report states it, else read from the
    archive); how it is built
    and for which server comes from `env_options`. `dvc_cache` and `checkout` are passed to
    `pull_weights`. `layout` is how the environment travels in the tar
    (`mmepack.artifact.env_layout`; `EnvLayout.PER_STEP` builds the layout of earlier releases);
    `compress_level` is the artifact's gzip level (benchmarks/package_bench.py compares them).
    """
    validation = validate_model(model_dir)
    _remove_previous_artifact(model_dir, output_dir, validation)
    errors = validation.errors
    if errors:
        shown = "\n".join(f"  {p}" for p in errors[:_SHOWN_PROBLEMS])
        more = len(errors) - _SHOWN_PROBLEMS
        raise MmepackError(
            f"model '{model_dir.name}': validation of {model_dir} found {len(errors)} errors; "
            "nothing was packaged. Fix "
            f"them (`mmepack validate {model_dir}` lists every problem):\n{shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    version = read_model_version(model_dir)
    directory = validation.directory()
    weights = validation.weights
    assert weights is not None  # an unreadable `.dvc` file is a validation error
    pulled = None
    if pull:
        # Validation has just refused working copies that differ from their records.
        pulled = pull_weights(
            directory.name,
            repo_root or Path.cwd(),
            weights,
            cache_dir=dvc_cache,
            checkout=checkout,
            check_drift=False,
        )
        if pulled is not None:
            print(f"mmepack: {describe_pull(directory.name, pulled)}", file=sys.stderr)
    verify_weights(directory.name, weights)

    def with_weights(result: PackageResult) -> PackageResult:
        return dataclasses.replace(result, weights=tuple(weights), pull=pulled)

    if not directory.python_env_models():
        result = write_artifact(
            directory,
            version,
            output_dir,
            None,
            weights,
            layout=layout,
            compress_level=compress_level,
        )
        return with_weights(result)
    options = env_options or EnvOptions()
    if env_archive is not None:
        if not env_archive.is_file():
            raise MmepackError(f"model '{directory.name}': environment {env_archive} is missing")
        env_python = env_python or archive_python(env_archive)
        request = EnvRequest(
            model_dir / REQUIREMENTS_FILE,
            python or (minor_version(env_python) if env_python else DEFAULT_PYTHON),
            directory.name,
            tensor_types=python_tensor_types(directory),
        )
        if stub is None:
            stub = options.stub(request)
        elif not stub.is_file():
            raise MmepackError(f"model '{directory.name}': {STUB_NAME} {stub} is missing")
        result = write_artifact(
            directory,
            version,
            output_dir,
            env_archive,
            weights,
            stub,
            layout=layout,
            compress_level=compress_level,
            env_python=env_python,
        )
        result = with_weights(result)
        return _with_unused_requirements(result, directory, request.requirements, env_archive)
    request = EnvRequest(
        model_dir / REQUIREMENTS_FILE,
        python or DEFAULT_PYTHON,
        directory.name,
        tensor_types=python_tensor_types(directory),
    )
    with scratch_dir("env") as scratch:
        built = build_environment(
            request,
            Path(scratch) / ENV_ARCHIVE,
            options=options,
            stub_output=Path(scratch) / STUB_NAME,
            cache=env_cache,
        )
        result = write_artifact(
            directory,
            version,
            output_dir,
            built.archive,
            weights,
            built.stub,
            layout=layout,
            compress_level=compress_level,
            env_python=built.python_version,
        )
        result = with_weights(result)
        return _with_unused_requirements(result, directory, request.requirements, built.archive)


def _with_unused_requirements(
    result: PackageResult, directory: ModelDirectory, requirements: Path, env_archive: Path
) -> PackageResult:
    """`result` with the requirements the size warning may name, read from the environment
    only when it dominates the artifact (the only case the warning is for)."""
    if environment_share(result) <= ENV_DOMINATES:
        return result
    dists = result.env_distributions
    if dists is None:  # not read while the artifact was written
        dists = environment_distributions(env_archive)
    unused = unused_requirements(directory, requirements, dists)
    return dataclasses.replace(result, unused_requirements=tuple(unused))

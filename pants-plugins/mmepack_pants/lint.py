"""`pants lint` for `triton_model` targets: `mmepack validate` on each model directory.

Validation is static (configs, ensemble wiring, files, versions), so it catches in seconds what
Triton would otherwise report one error at a time at load. One partition per model keeps
each result cached independently.
"""

from __future__ import annotations

from dataclasses import dataclass

from pants.backend.python.util_rules.pex import VenvPexProcess
from pants.core.goals.lint import LintResult, LintTargetsRequest
from pants.core.util_rules.partitions import PartitionerType, PartitionMetadata
from pants.core.util_rules.source_files import SourceFilesRequest
from pants.engine.rules import collect_rules, rule
from pants.engine.target import FieldSet
from pants.option.option_types import SkipOption
from pants.option.subsystem import Subsystem
from pants.util.logging import LogLevel

from mmepack_pants import engine
from mmepack_pants.target_types import TritonModelSourcesField


class MmepackValidate(Subsystem):
    options_scope = "mmepack-validate"
    name = "mmepack-validate"
    help = "Static validation of Triton model directories (`mmepack validate`), run by `lint`."

    skip = SkipOption("lint")


@dataclass(frozen=True)
class TritonModelValidateFieldSet(FieldSet):
    required_fields = (TritonModelSourcesField,)

    sources: TritonModelSourcesField


class MmepackValidateRequest(LintTargetsRequest):
    field_set_type = TritonModelValidateFieldSet
    tool_subsystem = MmepackValidate
    partitioner_type = PartitionerType.DEFAULT_ONE_PARTITION_PER_INPUT


@rule(desc="Validate Triton models", level=LogLevel.DEBUG)
async def validate_triton_model(
    request: MmepackValidateRequest.Batch[TritonModelValidateFieldSet, PartitionMetadata],
) -> LintResult:
    sources, cli = await engine.validate_inputs(
        SourceFilesRequest(fs.sources for fs in request.elements)
    )
    model_dirs = sorted({fs.address.spec_path for fs in request.elements})
    result = await engine.run(
        VenvPexProcess(
            cli,
            argv=["validate", *model_dirs],
            description=f"Validate {', '.join(model_dirs)}",
            input_digest=sources.snapshot.digest,
            level=LogLevel.DEBUG,
        ),
    )
    return LintResult.create(request, result)


def rules():
    return [*collect_rules(), *MmepackValidateRequest.rules()]

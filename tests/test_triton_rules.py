"""Triton core's load-time rules (mmepack.validate.triton_rules, .ensemble_graph): one broken
case per rule, each asserting file, line and message, and valid layouts that must stay clean.

Single-model rules are shown on `solo`, a one-model directory (a Python model that Triton loads
under the TargetModel name); ensemble rules on the baseline ensemble of tests/test_validate.py.
Every case id is named in docs/validation-rules.md beside the rule it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmepack.model.repository import read_triton_model
from mmepack.validate import Problem, validate_model_directory
from mmepack.validate.triton_rules import custom_backend_of, inferred_platform_backend
from tests.test_validate import (
    ENS,
    IDENTITY,
    NET_CFG,
    POST_CFG,
    POST_MODEL,
    Case,
    Expect,
    Remove,
    Replace,
    Write,
    _describe,
    _line,
    _matches,
    apply,
    case,
    write_good,
)

SOLO = """name: "solo"
backend: "python"
max_batch_size: 4
input [
  {
    name: "X"
    data_type: TYPE_FP32
    dims: [ 2, 3 ]
  }
]
output [
  {
    name: "Y"
    data_type: TYPE_FP64
    dims: [ 6 ]
  }
]
instance_group [
  {
    kind: KIND_CPU
  }
]
"""

S = "solo/config.pbtxt"
X_DIMS = "dims: [ 2, 3 ]"
Y_DIMS = "dims: [ 6 ]"
TAIL = "instance_group [\n  {\n    kind: KIND_CPU\n  }\n]\n"


def write_solo(root: Path) -> Path:
    (root / "solo" / "1").mkdir(parents=True)
    (root / "solo" / "config.pbtxt").write_text(SOLO)
    (root / "solo" / "1" / "model.py").write_text(POST_MODEL)
    (root / "model_version.txt").write_text("1\n")
    return root


def add(text: str) -> Replace:
    """Append config text to solo's config (after its instance_group)."""
    return Replace(S, TAIL, TAIL + text)


def refused(field: str, message: str, line_has: str | None) -> Expect:
    return Expect(S, field, message, line_has)


def seq(controls: str) -> Replace:
    return add(f"sequence_batching {{\n  control_input [\n{controls}\n  ]\n}}\n")


def ctl(name: str, body: str) -> str:
    return f'    {{ name: "{name}" control [ {{ {body} }} ] }}'


SOLO_CASES = [
    # --- inputs and outputs (ValidateIOShape) ---------------------------------------------
    case(
        "reshape_element_count",
        Replace(S, Y_DIMS, Y_DIMS + "\n    reshape: { shape: [ 4 ] }"),
        refused("output.reshape", "'Y' has different size for dims and reshape", "reshape"),
    ),
    case(
        "reshape_variable_segments",
        Replace(S, X_DIMS, "dims: [ 2, -1 ]\n    reshape: { shape: [ -1, 2 ] }"),
        refused("input.reshape", "'X' has different size for dims and reshape", "reshape"),
    ),
    case(
        "reshape_variable_count",
        Replace(S, X_DIMS, "dims: [ 2, -1 ]\n    reshape: { shape: [ -1, -1, 2 ] }"),
        refused("input.reshape", "has different number of variable-size dimensions", "reshape"),
    ),
    case(
        "reshape_zero_dim",
        Replace(S, Y_DIMS, Y_DIMS + "\n    reshape: { shape: [ 0 ] }"),
        refused("output.reshape", "reshape dimensions must be integer >= 1", "reshape"),
    ),
    case(
        "empty_reshape_non_batching",
        (
            Replace(S, "max_batch_size: 4", "max_batch_size: 0"),
            Replace(S, Y_DIMS, "dims: [ 1 ]\n    reshape: { shape: [ ] }"),
        ),
        refused("output.reshape", "cannot have empty reshape for non-batching", "reshape"),
    ),
    case(
        "zero_dim",
        Replace(S, X_DIMS, "dims: [ 2, 0 ]"),
        refused("input.dims", "'X' dimension must be integer >= 1, or -1", "dims"),
    ),
    case(
        "missing_data_type",
        Replace(S, "    data_type: TYPE_FP32\n", ""),
        refused("input.data_type", "model input 'X' must specify 'data_type'", 'name: "X"'),
    ),
    case(
        "missing_dims",
        Replace(S, "    " + Y_DIMS + "\n", ""),
        refused("output.dims", "model output 'Y' must specify 'dims'", 'name: "Y"'),
    ),
    case(
        "missing_io_name",
        Replace(S, '    name: "Y"\n', ""),
        refused("output.name", "model output must specify 'name'", "output"),
    ),
    case(
        "layout_needs_3_dims",
        Replace(S, X_DIMS, X_DIMS + "\n    format: FORMAT_NHWC"),
        refused("input.format", "model input NHWC/NCHW require 3 dims", "format"),
    ),
    case(
        "shape_tensor_not_tensorrt",
        Replace(S, X_DIMS, X_DIMS + "\n    is_shape_tensor: true"),
        refused("input.is_shape_tensor", "shape tensors are only supported for TensorRT", "is_"),
    ),
    case(
        "non_linear_io_not_tensorrt",
        Replace(S, Y_DIMS, Y_DIMS + "\n    is_non_linear_format_io: true"),
        refused("output.is_non_linear_format_io", "Non-linear IO format is only", "is_non"),
    ),
    # --- batch inputs and outputs (ValidateBatchIO) ---------------------------------------
    case(
        "batch_input_two_sources",
        add(
            'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "B" data_type: TYPE_FP32\n'
            '  source_input: [ "X", "X" ] } ]\n'
        ),
        refused("batch_input.source_input", "expects 1 source input, got 2", "source_input"),
    ),
    case(
        "batch_input_data_type",
        add(
            'batch_input [ { kind: BATCH_ELEMENT_COUNT target_name: "B" data_type: TYPE_INT64\n'
            '  source_input: [ "X" ] } ]\n'
        ),
        refused("batch_input.data_type", "must be TYPE_INT32 or TYPE_FP32", "data_type"),
    ),
    case(
        "batch_input_unknown_source",
        add(
            'batch_input [ { kind: BATCH_ITEM_SHAPE target_name: "B" data_type: TYPE_INT32\n'
            '  source_input: [ "Z" ] } ]\n'
        ),
        refused("batch_input.source_input", "unknown source input name 'Z'", "source_input"),
    ),
    case(
        "batch_output_no_source",
        add('batch_output [ {\n  kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "Y" } ]\n'),
        refused("batch_output.source_input", "expects 1 source input, got 0", "kind"),
    ),
    case(
        "batch_output_unknown_source",
        add(
            'batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "Y"\n'
            '  source_input: [ "Z" ] } ]\n'
        ),
        refused("batch_output.source_input", "unknown source input name 'Z'", "source_input"),
    ),
    case(
        "batch_output_unknown_target",
        add(
            'batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: [ "X" ]\n'
            '  target_name: [ "Q" ] } ]\n'
        ),
        refused("batch_output.target_name", "unknown target output name 'Q'", "target_name"),
    ),
    case(
        "batch_output_target_twice",
        add(
            'batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: [ "X" ]\n'
            '  target_name: [ "Y",\n  "Y" ] } ]\n'
        ),
        refused("batch_output.target_name", "target output name 'Y' can only be", '  "Y" ]'),
    ),
    # --- model-level fields (ValidateModelConfig) -----------------------------------------
    case(
        "negative_max_batch_size",
        Replace(S, "max_batch_size: 4", "max_batch_size: -1"),
        refused("max_batch_size", "'max_batch_size' must be non-negative value", "-1"),
    ),
    case(
        "unknown_platform",
        Replace(S, 'backend: "python"', 'platform: "mxnet_params"'),
        refused("platform", "unexpected platform type 'mxnet_params' for solo", "mxnet"),
    ),
    case(
        "platform_backend_pair",
        Replace(
            S,
            'backend: "python"',
            'platform: "pytorch_libtorch"\nbackend: "onnxruntime"\n'
            'default_model_filename: "model.py"',
        ),
        refused("backend", "unexpected 'platform' and 'backend' pair", "backend"),
    ),
    case(
        "runtime_escapes_backend_dir",
        Replace(S, 'backend: "python"', 'backend: "python"\nruntime: "../../lib/evil.so"'),
        refused("runtime", "escapes backend directory", "runtime"),
    ),
    case(
        "target_model_without_backend",
        Replace(S, 'backend: "python"\n', ""),
        refused("platform", "neither 'platform' nor 'backend' is set on the model SageMaker", None),
    ),
    case(
        "preferred_batch_size_over_max",
        add("dynamic_batching {\n  preferred_batch_size: [ 2,\n 8 ]\n}\n"),
        refused("dynamic_batching.preferred_batch_size", "must be <= max batch size", " 8 ]"),
    ),
    case(
        "preferred_batch_size_zero",
        add("dynamic_batching {\n  preferred_batch_size: [ 0 ]\n}\n"),
        refused("dynamic_batching.preferred_batch_size", "must be positive", "preferred"),
    ),
    case(
        "default_priority_out_of_range",
        add("dynamic_batching {\n  priority_levels: 2\n  default_priority_level: 3\n}\n"),
        refused(
            "dynamic_batching.default_priority_level",
            "default priority level must be in range [1, 2]",
            "default_priority_level",
        ),
    ),
    case(
        "queue_policy_level_out_of_range",
        add(
            "dynamic_batching {\n  priority_levels: 2\n  default_priority_level: 1\n"
            "  priority_queue_policy { key: 5 value: { timeout_action: REJECT } }\n}\n"
        ),
        refused(
            "dynamic_batching.priority_queue_policy",
            "priority queue policy must have priority level in range [1, 2]",
            "key: 5",
        ),
    ),
    case(
        "preserve_ordering_with_priorities",
        add(
            "dynamic_batching {\n  preserve_ordering: true\n  priority_levels: 2\n"
            "  default_priority_level: 1\n}\n"
        ),
        refused(
            "dynamic_batching.preserve_ordering",
            "Only one priority level is allowed when 'preserve_ordering'",
            "preserve_ordering",
        ),
    ),
    case(
        "preserve_ordering_with_delay",
        add(
            "dynamic_batching {\n  preserve_ordering: true\n  default_queue_policy {\n"
            "    timeout_action: DELAY\n    default_timeout_microseconds: 100\n  }\n}\n"
        ),
        refused(
            "dynamic_batching.preserve_ordering",
            "Queue policy can not have DELAY as timeout action",
            "preserve_ordering",
        ),
    ),
    # --- sequence batching (Get*SequenceControlProperties) --------------------------------
    case(
        "sequence_two_controls_of_one_kind",
        seq(
            ctl("S1", "kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ]")
            + ",\n"
            + ctl("S2", "kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ]")
        ),
        refused(
            "sequence_batching.control_input",
            "sequence batching specifies multiple CONTROL_SEQUENCE_START tensors",
            "control_input",
        ),
    ),
    case(
        "sequence_tensor_for_two_kinds",
        seq(
            ctl("S", "kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ]")
            + ",\n"
            + ctl("S", "kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ]")
        ),
        refused(
            "sequence_batching.control_input",
            "control tensor 'S' is specified for multiple control kinds",
            "control_input",
        ),
    ),
    case(
        "sequence_control_without_values",
        seq(ctl("S", "kind: CONTROL_SEQUENCE_READY")),
        refused(
            "sequence_batching.control_input",
            "must specify either 'int32_false_true', 'fp32_false_true' or 'bool_false_true' "
            "for CONTROL_SEQUENCE_READY",
            "control_input",
        ),
    ),
    case(
        "sequence_control_two_value_types",
        seq(
            ctl(
                "S",
                "kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] "
                "fp32_false_true: [ 0, 1 ]",
            )
        ),
        refused("sequence_batching.control_input", "specifies more than one from", "control"),
    ),
    case(
        "sequence_control_one_value",
        seq(ctl("S", "kind: CONTROL_SEQUENCE_START bool_false_true: [ true ]")),
        refused(
            "sequence_batching.control_input",
            "control 'bool_false_true' must have exactly 2 entries",
            "control_input",
        ),
    ),
    case(
        "sequence_control_without_name",
        seq("    { control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] }"),
        refused(
            "sequence_batching.control_input", "control tensor must have a name", "control_input"
        ),
    ),
    case(
        "sequence_corrid_without_data_type",
        seq(ctl("C", "kind: CONTROL_SEQUENCE_CORRID")),
        refused(
            "sequence_batching.control_input",
            "unexpected data type for control CONTROL_SEQUENCE_CORRID",
            "control_input",
        ),
    ),
    case(
        "sequence_corrid_with_values",
        seq(ctl("C", "kind: CONTROL_SEQUENCE_CORRID int32_false_true: [ 0, 1 ]")),
        refused(
            "sequence_batching.control_input",
            "must not specify either 'int32_false_true'",
            "control_input",
        ),
    ),
    case(
        "sequence_with_response_cache",
        add("sequence_batching { }\nresponse_cache { enable: true }\n"),
        refused("response_cache", "with sequence batching scheduler", "response_cache"),
    ),
    case(
        "sequence_oldest_preferred_size",
        add("sequence_batching {\n  oldest {\n    preferred_batch_size: [ 9 ]\n  }\n}\n"),
        refused(
            "sequence_batching.oldest.preferred_batch_size",
            "preferred batch size must be <= max batch size",
            "preferred_batch_size",
        ),
    ),
    case(
        "sequence_direct_utilization",
        add("sequence_batching {\n  direct {\n    minimum_slot_utilization: 1.5\n  }\n}\n"),
        refused(
            "sequence_batching.direct.minimum_slot_utilization",
            "minimum slot utilization must be in range (0.0, 1.0]",
            "minimum_slot_utilization",
        ),
    ),
    case(
        "decoupled_with_response_cache",
        add("model_transaction_policy { decoupled: true }\nresponse_cache { enable: true }\n"),
        refused("response_cache", "with 'decoupled' transaction policy", "response_cache"),
    ),
    # --- instance groups (ValidateInstanceGroup) ------------------------------------------
    case(
        "kind_cpu_with_gpus",
        Replace(S, "    kind: KIND_CPU\n", "    kind: KIND_CPU\n    gpus: [ 0 ]\n"),
        refused("instance_group.gpus", "has kind KIND_CPU but specifies one or more GPUs", "gpus"),
    ),
    case(
        "kind_model_with_gpus",
        Replace(S, "    kind: KIND_CPU\n", "    kind: KIND_MODEL\n    gpus: [ 1 ]\n"),
        refused("instance_group.gpus", "has kind KIND_MODEL but specifies", "gpus"),
    ),
    case(
        "negative_gpu_id",
        Replace(S, "    kind: KIND_CPU\n", "    kind: KIND_GPU\n    gpus: [ -1 ]\n"),
        refused("instance_group.gpus", "specifies invalid or unsupported gpu id -1", "gpus"),
        Expect(S, "instance_group", "KIND_GPU needs a GPU host", "KIND_GPU", "warning"),
    ),
    case(
        "profile_not_tensorrt",
        Replace(S, "    kind: KIND_CPU\n", '    kind: KIND_CPU\n    profile: [ "0" ]\n'),
        refused("instance_group.profile", "only supported for TensorRT", "profile"),
    ),
    # --- model metrics: accepted by Triton, so only a warning -----------------------------
    case(
        "model_metrics_not_in_2_51",
        add('model_metrics {\n  metric_control [ { metric_identifier { family: "f" } } ]\n}\n'),
        Expect(S, "model_metrics", "failed to read text proto", "model_metrics"),
    ),
]

ENSEMBLE_CASES = [
    case(
        "step_without_output_map",
        Replace(ENS, '      output_map { key: "LABEL" value: "LABEL" }\n', ""),
        Expect(ENS, "output_map", "step 3 (demo_post) has no output_map", "demo_post"),
        Expect(ENS, "output", "ensemble output 'LABEL' is not produced by any step", "LABEL"),
    ),
    case(
        "ensemble_with_backend",
        Replace(ENS, 'platform: "ensemble"', 'platform: "ensemble"\nbackend: "python"'),
        Expect(ENS, "backend", "must have platform type 'ensemble' and empty backend", "backend"),
    ),
    case(
        "ensemble_with_optimization",
        Replace(
            ENS, "max_batch_size: 8", "max_batch_size: 8\noptimization { priority: PRIORITY_MAX }"
        ),
        Expect(ENS, "optimization", "optimization should not be specified for ensemble", "optim"),
    ),
    case(
        "ensemble_with_warmup",
        Replace(ENS, "max_batch_size: 8", 'max_batch_size: 8\nmodel_warmup [ { name: "w" } ]'),
        Expect(ENS, "model_warmup", "model_warmup can not be specified for ensemble", "warmup"),
    ),
    case(
        "step_backend_from_unknown_file",
        (Replace(POST_CFG, 'backend: "python"\n', ""), Remove("demo_post/1/model.py")),
        Expect(POST_CFG, "backend", "Could not determine backend for model 'demo_post'", None),
    ),
]

# Cases of rules this module adds (the wiring rules keep their own wording).
NEW_RULES = {c.id for c in SOLO_CASES if c.id != "target_model_without_backend"} | {
    "ensemble_with_backend",
    "ensemble_with_optimization",
    "ensemble_with_warmup",
    "step_backend_from_unknown_file",
}

CASES: list[tuple[str, Case]] = [("solo", c) for c in SOLO_CASES] + [
    ("demo", c) for c in ENSEMBLE_CASES
]


@pytest.mark.parametrize("fixture,broken", CASES, ids=[c.id for _, c in CASES])
def test_triton_rule(tmp_path: Path, fixture: str, broken: Case) -> None:
    root = write_solo(tmp_path / "solo_dir") if fixture == "solo" else write_good(tmp_path / "d")
    for edit in broken.edits:
        apply(root, edit)
    problems = validate_model_directory(root)
    assert len(problems) == len(broken.expected), _describe(problems)
    for expected in broken.expected:
        matching = [p for p in problems if _matches(root, p, expected)]
        assert len(matching) == 1, f"{expected} not reported:\n{_describe(problems)}"
        problem = matching[0]
        if expected.severity == "error" and broken.id in NEW_RULES:
            assert "refuses to load it" in problem.message, str(problem)
        if expected.line_has is None:
            assert problem.line is None, str(problem)
        else:
            assert problem.line is not None, str(problem)
            assert expected.line_has in _line(problem.file, problem.line), str(problem)


def test_every_case_id_is_in_the_rules_table() -> None:
    table = (Path(__file__).resolve().parents[1] / "docs" / "validation-rules.md").read_text()
    missing = [c.id for _, c in CASES if f"`{c.id}`" not in table]
    assert missing == []


# --------------------------------------------------------------------------------------------
# Valid layouts Triton accepts: never an error
# --------------------------------------------------------------------------------------------


def test_solo_baseline_is_clean(tmp_path: Path) -> None:
    assert validate_model_directory(write_solo(tmp_path / "s")) == []


def test_valid_reshapes_pass(tmp_path: Path) -> None:
    root = write_solo(tmp_path / "s")
    apply(
        root, Replace(S, X_DIMS, "dims: [ 2, 4, -1, 6 ]\n    reshape: { shape: [ 8, -1, 1, 6 ] }")
    )
    apply(root, Replace(S, Y_DIMS, "dims: [ 1 ]\n    reshape: { shape: [ ] }"))
    assert validate_model_directory(root) == []


def test_steps_take_their_backend_from_the_model_file(tmp_path: Path) -> None:
    root = write_good(tmp_path / "d")
    apply(root, Replace(NET_CFG, 'backend: "onnxruntime"\n', ""))
    apply(root, Replace(POST_CFG, 'backend: "python"\n', ""))
    assert validate_model_directory(root) == []


def test_step_whose_backend_comes_from_its_folder_name_is_accepted(tmp_path: Path) -> None:
    """Triton's custom-backend fallback: a step `<name>.<backend>` with no platform, backend or
    model file runs on that backend (core r24.10 AutoCompleteBackendFields), as Triton's QA
    model-config suites load such models. Accepted, packaged under that folder name."""
    root = write_good(tmp_path / "d")
    post = root / "demo_post"
    post.rename(root / "demo_post.identity")
    apply(root, Replace("demo_post.identity/config.pbtxt", 'backend: "python"\n', ""))
    apply(root, Replace("demo_post.identity/config.pbtxt", '"demo_post"', '"demo_post.identity"'))
    apply(root, Remove("demo_post.identity/1/model.py"))
    (root / "demo_post.identity" / "1" / "model.identity").write_text("weights\n")
    apply(root, Replace(ENS, 'model_name: "demo_post"', 'model_name: "demo_post.identity"'))
    problems = validate_model_directory(root)
    assert [p for p in problems if p.severity == "error"] == [], _describe(problems)
    model = read_triton_model(root / "demo_post.identity")
    assert inferred_platform_backend(model) == ("", "identity")
    # A suffix that names a backend with a usual file: without that file Triton's fallback
    # sets default_model_filename model.<backend>, which must then be there.
    (root / "demo_post.identity").rename(root / "demo_post.python")
    apply(
        root, Replace("demo_post.python/config.pbtxt", '"demo_post.identity"', '"demo_post.python"')
    )
    apply(root, Replace(ENS, 'model_name: "demo_post.identity"', 'model_name: "demo_post.python"'))
    missing = [p for p in validate_model_directory(root) if p.severity == "error"]
    assert len(missing) == 1 and "1/model.python is missing" in missing[0].message, missing
    (root / "demo_post.python").rename(root / "demo_post.identity")
    apply(
        root,
        Replace("demo_post.identity/config.pbtxt", '"demo_post.python"', '"demo_post.identity"'),
    )
    apply(root, Replace(ENS, 'model_name: "demo_post.python"', 'model_name: "demo_post.identity"'))
    # Without the suffix Triton cannot tell: still refused, and the fix names the suffix form.
    (root / "demo_post.identity").rename(root / "demo_post")
    apply(root, Replace(ENS, 'model_name: "demo_post.identity"', 'model_name: "demo_post"'))
    apply(root, Replace(POST_CFG, '"demo_post.identity"', '"demo_post"'))
    refusals = [p for p in validate_model_directory(root) if p.field == "backend"]
    assert len(refusals) == 1 and "name the folder <name>.<backend>" in refusals[0].message


def test_custom_backend_name_is_the_text_after_the_first_dot() -> None:
    assert custom_backend_of("scale.identity") == "identity"
    assert custom_backend_of("a.b.c") == "b.c"
    assert custom_backend_of("plain") is None and custom_backend_of("trailing.") is None


def _identity(root: Path, name: str, extra: str = "") -> None:
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text(IDENTITY.format(name=name) + extra)
    (root / name / "1" / "model.py").write_text(POST_MODEL)


def _ensemble(name: str, steps: list[tuple[str, str, str]], platform: str, outputs: str) -> str:
    body = ",\n".join(
        f'    {{ model_name: "{model}" model_version: -1\n'
        f'      input_map {{ key: "X" value: "{source}" }}\n'
        f'      output_map {{ key: "Y" value: "{target}" }} }}'
        for model, source, target in steps
    )
    return (
        f'name: "{name}"\n{platform}\nmax_batch_size: 8\n'
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        f"output [ {outputs} ]\n"
        f"ensemble_scheduling {{\n  step [\n{body}\n  ]\n}}\n"
    )


OUT = '{ name: "OUT" data_type: TYPE_FP32 dims: [ 2 ] }'
TOP = 'platform: "ensemble"'
NESTED = 'platform : "ensemble"'  # Triton reads it the same; SageMaker's pattern skips it


def _nested(tmp_path: Path, inner_platform: str) -> Path:
    root = tmp_path / "outer"
    _identity(root, "step_a")
    _identity(root, "step_b")
    for name, text in (
        ("outer", _ensemble("outer", [("inner", "IN", "mid"), ("step_b", "mid", "OUT")], TOP, OUT)),
        ("inner", _ensemble("inner", [("step_a", "IN", "OUT")], inner_platform, OUT)),
    ):
        (root / name).mkdir()
        (root / name / "config.pbtxt").write_text(text.replace('"X"', '"X"'))
    # The inner ensemble's tensors are named IN/OUT; the outer maps them by those names.
    outer = root / "outer" / "config.pbtxt"
    outer.write_text(
        outer.read_text()
        .replace('input_map { key: "X" value: "IN" }', 'input_map { key: "IN" value: "IN" }', 1)
        .replace('output_map { key: "Y" value: "mid" }', 'output_map { key: "OUT" value: "mid" }')
    )
    (root / "model_version.txt").write_text("1\n")
    return root


def test_nested_ensemble_written_apart_from_the_pattern_is_valid(tmp_path: Path) -> None:
    assert validate_model_directory(_nested(tmp_path, NESTED)) == []


def test_nested_ensemble_matching_sagemakers_pattern_is_refused(tmp_path: Path) -> None:
    root = _nested(tmp_path, TOP)
    problems = validate_model_directory(root)
    assert [(p.file.parent.name, p.field) for p in problems] == [("inner", "platform")]
    assert "may load it instead of the top-level ensemble" in problems[0].message
    assert 'platform: "ensemble"' in _line(problems[0].file, problems[0].line or 0)


def _messages(problems: list[Problem], field: str) -> list[Problem]:
    return [p for p in problems if p.field == field]


def test_ensemble_cycle_across_ensembles(tmp_path: Path) -> None:
    root = tmp_path / "cyc"
    _identity(root, "step_a")
    for name, text in (
        ("ens_a", _ensemble("ens_a", [("ens_b", "IN", "OUT")], TOP, OUT)),
        ("ens_b", _ensemble("ens_b", [("ens_a", "IN", "OUT")], NESTED, OUT)),
    ):
        (root / name).mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(
            text.replace('key: "X"', 'key: "IN"').replace('key: "Y"', 'key: "OUT"')
        )
    (root / "model_version.txt").write_text("1\n")
    problems = validate_model_directory(root)
    cycles = [p for p in problems if "circular dependency between ensembles" in p.message]
    assert len(cycles) == 1, _describe(problems)
    assert "ens_a -> ens_b -> ens_a" in cycles[0].message
    assert cycles[0].file == root / "ens_a" / "config.pbtxt"
    assert 'model_name: "ens_b"' in _line(cycles[0].file, cycles[0].line or 0)


def test_ensemble_that_uses_itself(tmp_path: Path) -> None:
    root = tmp_path / "self"
    _identity(root, "step_a")
    steps = [("step_a", "IN", "mid"), ("selfish", "mid", "OUT")]
    (root / "selfish").mkdir(parents=True)
    (root / "selfish" / "config.pbtxt").write_text(
        _ensemble("selfish", steps, TOP, OUT)
        .replace(
            'model_name: "selfish" model_version: -1\n      input_map { key: "X"',
            'model_name: "selfish" model_version: -1\n      input_map { key: "IN"',
        )
        .replace('value: "OUT" }', 'value: "OUT" }', 1)
    )
    (root / "model_version.txt").write_text("1\n")
    problems = validate_model_directory(root)
    cycles = [p for p in problems if "circular dependency between ensembles" in p.message]
    assert len(cycles) == 1, _describe(problems)
    assert "selfish -> selfish" in cycles[0].message
    assert 'model_name: "selfish"' in _line(cycles[0].file, cycles[0].line or 0)


DECOUPLED = "model_transaction_policy { decoupled: true }\n"
TWO_IN = """name: "join"
backend: "python"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "B" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]
"""


def _decoupled_ensemble(tmp_path: Path, second_decoupled: bool) -> Path:
    root = tmp_path / "dec"
    _identity(root, "d1", DECOUPLED)
    _identity(root, "d2", DECOUPLED if second_decoupled else "")
    (root / "join" / "1").mkdir(parents=True)
    (root / "join" / "config.pbtxt").write_text(TWO_IN)
    (root / "join" / "1" / "model.py").write_text(POST_MODEL)
    text = _ensemble("dec", [("d1", "IN", "a"), ("d2", "IN", "b")], TOP, OUT)
    text = text.replace(
        "\n  ]\n}",
        ',\n    { model_name: "join" model_version: -1\n'
        '      input_map { key: "A" value: "a" }\n      input_map { key: "B" value: "b" }\n'
        '      output_map { key: "Y" value: "OUT" } }\n  ]\n}',
    )
    (root / "dec").mkdir()
    (root / "dec" / "config.pbtxt").write_text(text)
    (root / "model_version.txt").write_text("1\n")
    return root


def test_decoupled_branches_feeding_one_step(tmp_path: Path) -> None:
    root = _decoupled_ensemble(tmp_path, second_decoupled=True)
    problems = validate_model_directory(root)
    assert len(problems) == 1, _describe(problems)
    assert problems[0].field == "input_map"
    assert "step of model 'join' receives inputs originated from different decoupled" in (
        problems[0].message
    )
    assert 'model_name: "join"' in _line(problems[0].file, problems[0].line or 0)


def test_decoupled_branch_joined_with_a_plain_one(tmp_path: Path) -> None:
    # d2 is not decoupled, so its output keeps the ensemble inputs' origin, which differs
    # from d1's: Triton refuses that join too.
    problems = validate_model_directory(_decoupled_ensemble(tmp_path, second_decoupled=False))
    assert [p.field for p in problems] == ["input_map"], _describe(problems)


def test_one_decoupled_chain_is_valid(tmp_path: Path) -> None:
    root = tmp_path / "chain"
    _identity(root, "d1", DECOUPLED)
    _identity(root, "p2")
    (root / "chain").mkdir()
    (root / "chain" / "config.pbtxt").write_text(
        _ensemble("chain", [("d1", "IN", "a"), ("p2", "a", "OUT")], TOP, OUT)
    )
    (root / "model_version.txt").write_text("1\n")
    assert validate_model_directory(root) == []

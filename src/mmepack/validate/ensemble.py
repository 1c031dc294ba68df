"""Triton's ensemble validation, collecting every finding instead of stopping at the first.

Mirrors `ensemble_utils.cc` of Triton 2.51: each step must name a model of this artifact, map
every input it needs, and agree with every other view of the tensors it reads and writes; every
ensemble input must be read and every output written; tensors nobody reads and cycles between
steps are refused. The walk is split into steps that share one `_Wiring`, the graph of which
step reads and writes which tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mmepack.model.config import ModelConfig, Positions, Problem, data_type_name
from mmepack.model.repository import TritonModel


@dataclass(frozen=True)
class _Tensor:
    """An ensemble tensor as one model sees it (Triton's TensorNode)."""

    data_type: str
    dims: tuple[int, ...]
    batching: bool
    seen_as: str

    @property
    def full_dims(self) -> tuple[int, ...]:
        return ((-1,) if self.batching else ()) + self.dims


def _dims_match(left: tuple[int, ...], right: tuple[int, ...]) -> bool:
    """Same rank and each dimension equal, -1 matching anything (CompareDimsWithWildcard)."""
    return len(left) == len(right) and all(
        a == b or a == -1 or b == -1 for a, b in zip(left, right)
    )


def _dims_text(dims: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _consistency(name: str, first: _Tensor, other: _Tensor) -> str | None:
    """Why two views of one ensemble tensor disagree, or None (ValidateTensorConsistency)."""
    if first.data_type != other.data_type:
        return (
            f"tensor {name!r} is {other.data_type} in {other.seen_as} but {first.data_type} in "
            f"{first.seen_as}"
        )
    # A batching and a non-batching model agree when the non-batching one spells out the batch
    # dimension, so the full shapes are compared when the plain dims differ.
    if not _dims_match(first.dims, other.dims) and not _dims_match(
        first.full_dims, other.full_dims
    ):
        return (
            f"tensor {name!r} has shape {_dims_text(other.full_dims)} in {other.seen_as} but "
            f"{_dims_text(first.full_dims)} in {first.seen_as} (batch dimension included; -1 "
            "matches any size)"
        )
    return None


def _io_tensors(
    config_ios: Iterable[ModelConfig], batching: bool, where: str, use_reshape: bool
) -> dict[str, _Tensor]:
    tensors: dict[str, _Tensor] = {}
    for io in config_ios:
        dims = tuple(int(d) for d in io.dims)
        if use_reshape and io.HasField("reshape"):
            dims = tuple(int(d) for d in io.reshape.shape)
        tensors[str(io.name)] = _Tensor(
            data_type_name(io.data_type), dims, batching, f"{where} {str(io.name)!r}"
        )
    return tensors


def _find_cycle(edges: dict[int, set[int]], count: int) -> list[int] | None:
    """One cycle of steps (as indexes, first repeated at the end), or None.

    Iterative depth-first search with an explicit stack: an ensemble of thousands of steps
    must not hit Python's recursion limit, and each step and edge is visited once.
    """
    state = [0] * count  # 0 new, 1 on the current path, 2 done
    position: dict[int, int] = {}  # step -> its index in `path`, while on the path
    path: list[int] = []
    for start in range(count):
        if state[start] != 0:
            continue
        stack: list[tuple[int, list[int]]] = [(start, sorted(edges.get(start, ()), reverse=True))]
        state[start] = 1
        position[start] = 0
        path.append(start)
        while stack:
            node, successors = stack[-1]
            if not successors:
                stack.pop()
                path.pop()
                del position[node]
                state[node] = 2
                continue
            nxt = successors.pop()
            if state[nxt] == 1:
                return path[position[nxt] :] + [nxt]
            if state[nxt] == 0:
                state[nxt] = 1
                position[nxt] = len(path)
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()), reverse=True)))
    return None


@dataclass
class _Wiring:
    """The ensemble's tensor graph as the steps are walked: who reads and writes which tensor.

    `known` holds the first view of each tensor (Triton's order: ensemble inputs and outputs,
    then each step's maps), against which every later view is compared.
    """

    ensemble: TritonModel
    steps: list[ModelConfig]
    inputs: dict[str, _Tensor]
    outputs: dict[str, _Tensor]
    known: dict[str, _Tensor] = field(default_factory=dict)
    producers: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, ensemble: TritonModel) -> _Wiring:
        batching = ensemble.max_batch_size > 0
        inputs = _io_tensors(ensemble.config.input, batching, "ensemble input", True)
        outputs = _io_tensors(ensemble.config.output, batching, "ensemble output", True)
        steps = list(ensemble.config.ensemble_scheduling.step)
        return cls(ensemble, steps, inputs, outputs, {**inputs, **outputs})

    def step_positions(self, index: int) -> Positions:
        return self.ensemble.positions.child("ensemble_scheduling").child("step", index)

    def step_line(self, index: int) -> int | None:
        return self.step_positions(index).line("model_name")

    def record(self, name: str, view: _Tensor, line: int | None, field_name: str) -> list[Problem]:
        """Compare a new view of an ensemble tensor with the first one seen."""
        first = self.known.get(name)
        if first is None:
            self.known[name] = view
            return []
        reason = _consistency(name, first, view)
        return [] if reason is None else [self.ensemble.problem(line, field_name, reason)]


@dataclass(frozen=True)
class _Step:
    """One step of the ensemble and, when its model is in this artifact, that model's tensors."""

    index: int
    config: ModelConfig
    name: str
    model: TritonModel | None
    inputs: dict[str, _Tensor]
    outputs: dict[str, _Tensor]
    optional: frozenset[str]
    positions: Positions
    line: int | None

    @property
    def label(self) -> str:
        return f"step {self.index + 1} ({self.name or 'unnamed'})"

    @classmethod
    def of(cls, wiring: _Wiring, index: int, models: Mapping[str, TritonModel | None]) -> _Step:
        config = wiring.steps[index]
        name = str(config.model_name)
        model = models.get(name)
        inputs: dict[str, _Tensor] = {}
        outputs: dict[str, _Tensor] = {}
        optional: frozenset[str] = frozenset()
        if model is not None:
            batching = model.max_batch_size > 0
            where = f"model {name!r}"
            inputs = _io_tensors(model.config.input, batching, where + " input", False)
            outputs = _io_tensors(model.config.output, batching, where + " output", False)
            optional = frozenset(str(i.name) for i in model.config.input if i.optional)
        positions = wiring.step_positions(index)
        return cls(
            index,
            config,
            name,
            model,
            inputs,
            outputs,
            optional,
            positions,
            wiring.step_line(index),
        )

    def map_line(self, map_field: str, key: str) -> int | None:
        """Line of this step's `input_map`/`output_map` entry for `key` (else the step's)."""
        return self.positions.entry(map_field, "key", key).line("key") or self.line


def _check_step_reference(
    ensemble: TritonModel,
    step: _Step,
    models: Mapping[str, TritonModel | None],
    versions: Mapping[str, list[int]],
) -> list[Problem]:
    """The step names a model of this artifact, a version it loads, and maps some tensors."""
    problems: list[Problem] = []
    if not step.name:
        problems.append(
            ensemble.problem(step.line, "model_name", f"step {step.index + 1} has no model_name")
        )
    elif step.name not in models:
        problems.append(
            ensemble.problem(
                step.line,
                "model_name",
                f"{step.label} names model {step.name!r}, which is not a model folder of "
                f"{ensemble.folder.parent}; SageMaker loads only the models in this tar",
            )
        )
    if not step.config.input_map:
        problems.append(ensemble.problem(step.line, "input_map", f"{step.label} has no input_map"))
    if not step.config.output_map:
        problems.append(
            ensemble.problem(step.line, "output_map", f"{step.label} has no output_map")
        )
    version = int(step.config.model_version)
    loaded = versions.get(step.name, [])
    if step.model is not None and version != -1 and version not in loaded:
        problems.append(
            ensemble.problem(
                step.positions.line("model_version") or step.line,
                "model_version",
                f"{step.label} asks for version {version}, which {step.name!r} does not load "
                f"(loaded: {', '.join(map(str, loaded)) or 'none'})",
            )
        )
    return problems


def _check_step_batching(ensemble: TritonModel, step: _Step) -> list[Problem]:
    """A batching ensemble needs steps that batch at least as much (or spell the dimension)."""
    if step.model is None:
        return []
    line = ensemble.positions.line("max_batch_size")
    if ensemble.max_batch_size > 0 and step.model.max_batch_size == 0:
        return [
            ensemble.problem(
                line,
                "max_batch_size",
                f"the ensemble batches (max_batch_size {ensemble.max_batch_size}) but "
                f"{step.name!r} does not (max_batch_size 0); Triton accepts this only if "
                "the step's dims spell out the batch dimension (-1, ...)",
                "warning",
            )
        ]
    if 0 < step.model.max_batch_size < ensemble.max_batch_size:
        return [
            ensemble.problem(
                line,
                "max_batch_size",
                f"the ensemble allows batches of {ensemble.max_batch_size} but "
                f"{step.name!r} only {step.model.max_batch_size}; Triton refuses to load it",
            )
        ]
    return []


def _check_input_map(wiring: _Wiring, step: _Step) -> list[Problem]:
    """Every mapped input exists on the step's model and agrees with the tensor; none is left out."""
    ensemble = wiring.ensemble
    problems: list[Problem] = []
    for key, value in sorted(step.config.input_map.items()):
        key, value = str(key), str(value)
        line = step.map_line("input_map", key)
        wiring.consumers.setdefault(value, []).append(step.index)
        if step.model is None:
            continue
        if key not in step.inputs:
            problems.append(
                ensemble.problem(
                    line,
                    "input_map",
                    f"{step.label} maps {value!r} to input {key!r}, which {step.name!r} does not "
                    f"have (inputs: {', '.join(sorted(step.inputs)) or 'none'})",
                )
            )
            continue
        problems.extend(wiring.record(value, step.inputs[key], line, "input_map"))
    if step.model is not None:
        for missing in sorted(set(step.inputs) - set(step.config.input_map) - step.optional):
            problems.append(
                ensemble.problem(
                    step.line,
                    "input_map",
                    f"{step.label}: input {missing!r} of {step.name!r} is not mapped to any "
                    "ensemble tensor",
                )
            )
    return problems


def _check_output_map(wiring: _Wiring, step: _Step) -> list[Problem]:
    """Each tensor is written once, never over an ensemble input, from an existing output."""
    ensemble = wiring.ensemble
    problems: list[Problem] = []
    for key, value in sorted(step.config.output_map.items()):
        key, value = str(key), str(value)
        line = step.map_line("output_map", key)
        if value in wiring.producers:
            first = wiring.producers[value]
            problems.append(
                ensemble.problem(
                    line,
                    "output_map",
                    f"{step.label} writes tensor {value!r}, which step {first + 1} "
                    f"({wiring.steps[first].model_name}) already writes; each ensemble tensor is "
                    "produced once",
                )
            )
        elif value in wiring.inputs:
            problems.append(
                ensemble.problem(
                    line,
                    "output_map",
                    f"{step.label} writes tensor {value!r}, which is an ensemble input",
                )
            )
        else:
            wiring.producers[value] = step.index
        if step.model is None:
            continue
        if key not in step.outputs:
            problems.append(
                ensemble.problem(
                    line,
                    "output_map",
                    f"{step.label} maps output {key!r} to {value!r}, but {step.name!r} has no "
                    f"such output (outputs: {', '.join(sorted(step.outputs)) or 'none'})",
                )
            )
            continue
        problems.extend(wiring.record(value, step.outputs[key], line, "output_map"))
    return problems


def _io_lines(positions: Positions, ios: Iterable[ModelConfig], io_field: str) -> dict[str, int]:
    """Line of each ensemble input's (or output's) `name:`, by tensor name."""
    lines: dict[str, int] = {}
    for index, io in enumerate(ios):
        line = positions.child(io_field, index).line("name")
        if line is not None:
            lines.setdefault(str(io.name), line)
    return lines


def _check_ensemble_io(wiring: _Wiring) -> list[Problem]:
    """Every ensemble input is read by a step and every output written by one."""
    ensemble = wiring.ensemble
    problems: list[Problem] = []
    input_lines = _io_lines(ensemble.positions, ensemble.config.input, "input")
    output_lines = _io_lines(ensemble.positions, ensemble.config.output, "output")
    for name in wiring.inputs:
        if name not in wiring.consumers:
            problems.append(
                ensemble.problem(
                    input_lines.get(name),
                    "input",
                    f"ensemble input {name!r} is not used by any step; Triton refuses to load it",
                )
            )
    for name in wiring.outputs:
        if name not in wiring.producers:
            problems.append(
                ensemble.problem(
                    output_lines.get(name),
                    "output",
                    f"ensemble output {name!r} is not produced by any step (no output_map "
                    "writes it)",
                )
            )
    return problems


def _check_dangling_tensors(wiring: _Wiring) -> list[Problem]:
    """Tensors read but never written, and written but never read (nor an ensemble output)."""
    ensemble = wiring.ensemble
    problems: list[Problem] = []
    for name, readers in sorted(wiring.consumers.items()):
        if name not in wiring.inputs and name not in wiring.producers:
            first = readers[0]
            line = wiring.step_positions(first).entry("input_map", "value", name).line("value")
            problems.append(
                ensemble.problem(
                    line or wiring.step_line(first),
                    "input_map",
                    f"step {first + 1} ({wiring.steps[first].model_name}) reads tensor {name!r}, "
                    "which is neither an ensemble input nor written by any step",
                )
            )
    for name, writer in sorted(wiring.producers.items()):
        if name not in wiring.outputs and name not in wiring.consumers:
            line = wiring.step_positions(writer).entry("output_map", "value", name).line("value")
            problems.append(
                ensemble.problem(
                    line or wiring.step_line(writer),
                    "output_map",
                    f"step {writer + 1} ({wiring.steps[writer].model_name}) writes tensor "
                    f"{name!r}, which no step reads and which is not an ensemble output; Triton "
                    "refuses unused tensors",
                )
            )
    return problems


def _check_cycles(wiring: _Wiring) -> list[Problem]:
    """A step that (indirectly) waits for its own output can never run."""
    edges: dict[int, set[int]] = {}
    for name, writer in wiring.producers.items():
        for reader in wiring.consumers.get(name, []):
            edges.setdefault(writer, set()).add(reader)
    cycle = _find_cycle(edges, len(wiring.steps))
    if cycle is None:
        return []
    names = " -> ".join(str(wiring.steps[i].model_name) for i in cycle)
    return [
        wiring.ensemble.problem(
            wiring.step_line(cycle[0]),
            "ensemble_scheduling",
            f"steps form a cycle: {names}; no step on it can ever run",
        )
    ]


def check_ensemble(
    ensemble: TritonModel,
    models: Mapping[str, TritonModel | None],
    versions: Mapping[str, list[int]],
) -> list[Problem]:
    """Every finding about one ensemble: its steps one by one, then the whole tensor graph.

    `models` holds every model folder of the directory (None where its config did not parse),
    `versions` the versions each parsed model's policy loads.
    """
    wiring = _Wiring.of(ensemble)
    if not wiring.steps:
        return [
            ensemble.problem(
                ensemble.positions.line("ensemble_scheduling"),
                "ensemble_scheduling",
                "an ensemble needs ensemble_scheduling with at least one step",
            )
        ]
    problems: list[Problem] = []
    for index in range(len(wiring.steps)):
        step = _Step.of(wiring, index, models)
        problems.extend(_check_step_reference(ensemble, step, models, versions))
        problems.extend(_check_step_batching(ensemble, step))
        problems.extend(_check_input_map(wiring, step))
        problems.extend(_check_output_map(wiring, step))
    problems.extend(_check_ensemble_io(wiring))
    problems.extend(_check_dangling_tensors(wiring))
    problems.extend(_check_cycles(wiring))
    return problems

"""Triton's checks that look at ensembles as a graph of models rather than one config at a time.

Two rules of Triton 2.51 need every model of the directory at once: ensembles must not depend on
each other in a cycle, themselves included (`model_repository_manager.cc`, "circular dependency
between ensembles"), and no step may read tensors that come from different decoupled models,
nor may the ensemble's outputs (`ensemble_utils.cc`: a decoupled model answers any number of
times, so Triton cannot pair up its responses with another branch's). Both are load-time
refusals, so both are errors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from mmepack.model.config import Problem
from mmepack.model.repository import TritonModel
from mmepack.model.rules import step_model_names


def _step_line(ensemble: TritonModel, target: str) -> int | None:
    """Line of the first step of `ensemble` that names model `target`."""
    scheduling = ensemble.positions.child("ensemble_scheduling")
    for index, step in enumerate(ensemble.config.ensemble_scheduling.step):
        if str(step.model_name) == target:
            return scheduling.child("step", index).line("model_name")
    return None


def check_ensemble_cycles(models: Sequence[TritonModel]) -> list[Problem]:
    """An ensemble that (through other ensembles) uses itself as a step never loads."""
    ensembles = {m.name: m for m in models if m.is_ensemble}
    edges = {
        name: sorted(n for n in step_model_names(model) if n in ensembles)
        for name, model in ensembles.items()
    }
    problems: list[Problem] = []
    reported: set[frozenset[str]] = set()
    for start in sorted(ensembles):
        path = _path_back_to(start, edges)
        if path is None or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        first = ensembles[start]
        chain = " -> ".join([*path, start])
        problems.append(
            first.problem(
                _step_line(first, path[1] if len(path) > 1 else start),
                "model_name",
                f'Triton refuses to load it: "circular dependency between ensembles: {chain}"; '
                "an ensemble cannot use itself as a step, directly or through another ensemble",
            )
        )
    return problems


def _path_back_to(start: str, edges: Mapping[str, list[str]]) -> list[str] | None:
    """The shortest chain of ensembles from `start` back to itself, or None (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for upstream in edges.get(node, []):
                if upstream == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path))
                if upstream not in parents:
                    parents[upstream] = node
                    following.append(upstream)
        frontier = following
    return None


def check_decoupled_branches(
    ensemble: TritonModel, models: Mapping[str, TritonModel | None]
) -> list[Problem]:
    """No step, and not the ensemble's outputs, may join tensors of different decoupled origins.

    As Triton labels them: ensemble inputs carry label 0; a decoupled step's outputs get a new
    label, any other step's outputs the label its inputs share. Steps are taken in data order
    (steps on a cycle or reading unknown tensors never become ready; the wiring checks report
    those).
    """
    labels = {str(io.name): 0 for io in ensemble.config.input}
    steps = list(ensemble.config.ensemble_scheduling.step)
    scheduling = ensemble.positions.child("ensemble_scheduling")
    # Kahn's order over tensors, so steps listed in any order cost one pass (linear).
    reads = [sorted({str(v) for v in step.input_map.values()}) for step in steps]
    missing = [sum(1 for name in names if name not in labels) for names in reads]
    waiting: dict[str, list[int]] = {}
    for index, names in enumerate(reads):
        for name in names:
            if name not in labels:
                waiting.setdefault(name, []).append(index)
    ready = deque(index for index, count in enumerate(missing) if count == 0)
    next_label = 0
    problems: list[Problem] = []
    while ready:
        index = ready.popleft()
        step = steps[index]
        name = str(step.model_name)
        origins = {labels[n] for n in reads[index]}
        if len(origins) > 1:
            line = scheduling.child("step", index).line("model_name")
            problems.append(_mixed(ensemble, line, name))
        model = models.get(name)
        decoupled = model is not None and bool(model.config.model_transaction_policy.decoupled)
        if decoupled:
            next_label += 1
        label = next_label if decoupled else min(origins, default=0)
        for value in (str(v) for v in step.output_map.values()):
            if value in labels:
                continue  # written twice or over an input: reported by the wiring checks
            labels[value] = label
            for reader in waiting.pop(value, []):
                missing[reader] -= 1
                if missing[reader] == 0:
                    ready.append(reader)
    outputs = [str(io.name) for io in ensemble.config.output if str(io.name) in labels]
    if len({labels[name] for name in outputs}) > 1:
        line = ensemble.positions.line("output")
        problems.append(_mixed(ensemble, line, ensemble.name, outputs=True))
    return problems


def _mixed(ensemble: TritonModel, line: int | None, name: str, outputs: bool = False) -> Problem:
    where = "the ensemble's outputs come" if outputs else f"step {name!r} reads tensors that come"
    return ensemble.problem(
        line,
        "output" if outputs else "input_map",
        f"Triton refuses to load it: \"in ensemble {ensemble.name}, step of model '{name}' "
        f'receives inputs originated from different decoupled models"; {where} from different '
        "decoupled branches (or from one and the ensemble inputs); feed it from one branch only",
    )

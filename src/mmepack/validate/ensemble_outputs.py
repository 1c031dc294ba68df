"""Warn about ensemble outputs that a later step also reads.

Seen on Triton 2.51 (CPU, Python steps): when a tensor is both an ensemble output and the input
of a step, a request for all outputs works, but a request naming a strict subset (the label
alone) fails with HTTP 400 "unexpected deadlock, at least one output is not set while no more
ensemble steps can be made". Callers of a SageMaker endpoint often ask for one output, so this
is flagged before an artifact ships. It is a warning, not an error: Triton loads such an
ensemble, and a later release may schedule it correctly.
"""

from __future__ import annotations

import re
from pathlib import Path

from mmepack.model.config import ModelConfig, Problem

SEEN_ON = "Triton 2.51"


def _line_of(text: str, tensor: str) -> int | None:
    """The first input_map line that reads `tensor`, for the editor to jump to."""
    pattern = re.compile(r'input_map\s*\{[^}]*value:\s*"' + re.escape(tensor) + '"')
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line):
            return number
    return None


def ensemble_output_warnings(config: ModelConfig, config_path: Path, text: str) -> list[Problem]:
    """One warning per ensemble output that some step also takes as an input."""
    outputs = [str(tensor.name) for tensor in config.output]
    problems: list[Problem] = []
    for name in outputs:
        readers = [
            f"step {index + 1} ({step.model_name})"
            for index, step in enumerate(config.ensemble_scheduling.step)
            if name in {str(value) for value in step.input_map.values()}
        ]
        if not readers:
            continue
        problems.append(
            Problem(
                config_path,
                _line_of(text, name),
                "output_map",
                f"ensemble output {name!r} is also read by {', '.join(readers)}; a request for "
                f"a subset of the outputs then fails with 'unexpected deadlock' (seen on "
                f"{SEEN_ON}); fix: map the producing step's output to an internal tensor "
                f"(e.g. {name.lower()!r}) for the step that reads it, and have the last step "
                f"write {name!r} (pass it through)",
                "warning",
            )
        )
    return problems

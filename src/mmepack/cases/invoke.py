"""Send one case's inputs to a served artifact and judge its answer.

Shared by the test runner and the recorder, so a recorded value is exactly what a later test
run compares against. Every output of the model is requested, whichever a case names: Triton
2.51 refuses a request for a subset of an ensemble's outputs when one output also feeds a later
step ("unexpected deadlock"), and a case should test the model, not that quirk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmepack.cases.compare import compare_output
from mmepack.cases.load import Case
from mmepack.cases.signature import Signature


@dataclass
class Answer:
    """The model's outputs for one case, or the error the server gave."""

    outputs: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    error: str | None = None


def case_tensors(case: Case, signature: Signature) -> list[Any]:
    """The case's inputs as binary tritonclient tensors, typed from the ensemble's config.

    One builder for the test runner, the recorder and the load test, so a load test sends
    exactly the bytes a case test checked.
    """
    import tritonclient.http as httpclient

    tensors = []
    for name, array in case.inputs.items():
        tensor = httpclient.InferInput(
            name, list(array.shape), signature.inputs[name].triton_datatype
        )
        tensor.set_data_from_numpy(array, binary_data=True)
        tensors.append(tensor)
    return tensors


def invoke(client: Any, model_name: str, case: Case, signature: Signature) -> Answer:
    """One inference with the case's inputs; a server error is an answer, not an exception."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    inputs = case_tensors(case, signature)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=True) for name in signature.outputs
    ]
    try:
        result = client.infer(model_name, inputs=inputs, outputs=outputs)
    except InferenceServerException as exc:
        return Answer(error=f"HTTP {exc.status()}: {exc.message()}")
    found: dict[str, np.ndarray[Any, Any]] = {}
    for name in signature.outputs:
        array = result.as_numpy(name)
        if array is not None:
            found[name] = array
    return Answer(outputs=found)


def judge(case: Case, answer: Answer, device: str) -> str | None:
    """None when the answer is what the case expects, else a report a person can act on."""
    if case.expected_error is not None:
        if answer.error is None:
            got = ", ".join(f"{n} {list(a.shape)}" for n, a in answer.outputs.items())
            return (
                f"expected an error containing {case.expected_error!r}, but the model "
                f"answered ({got or 'no outputs'})"
            )
        if case.expected_error not in answer.error:
            return (
                f"expected an error containing {case.expected_error!r}; the server said:\n"
                f"  {answer.error}"
            )
        return None
    if answer.error is not None:
        return f"the server refused the request:\n  {answer.error}"
    reports = [
        report
        for name, expected in case.expected.items()
        if (report := compare_output(expected, answer.outputs.get(name), device)) is not None
    ]
    return "\n".join(reports) if reports else None

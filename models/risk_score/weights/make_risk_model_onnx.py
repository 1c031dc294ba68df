"""Builds ``risk_score_model/1/model.onnx``: this is how the committed weights were made.

A gradient-boosted tree classifier (scikit-learn's ``GradientBoostingClassifier``, 40 trees of
depth 3) trained on synthetic transactions, converted to ONNX-ML with skl2onnx. Triton serves
it with ONNX Runtime's ``TreeEnsembleClassifier`` operator (domain ``ai.onnx.ml``), which is how
a tree model runs where Triton's FIL backend is not available (FIL needs a GPU build of Triton;
the local test server has none).

    FEATURES [N, 6] FP32 -> TreeEnsembleClassifier -> PROBABILITIES [N, 2] ([ok, risky])

The feature order is the one ``risk_score_features/1/model.py`` writes (FEATURE_NAMES below):
amount, account_age_days, failed_logins_24h, txn_count_1h, country_mismatch (0/1),
credit_utilization.

The data are synthetic: each feature is drawn from a plausible distribution and the label from
a logistic function of them (large amounts, new accounts, failed logins, bursts of
transactions, a country mismatch and high utilisation raise the risk), so the trees learn
something a reader can check by eye in the test cases.

Everything is seeded, and the opsets are fixed so that the target server's ONNX Runtime reads
the file (ai.onnx.ml opset 1 for TreeEnsembleClassifier, default-domain opset at most 17, IR version
8): rerunning this script with the same scikit-learn and skl2onnx releases (1.9.1 and 1.20.0
made the committed file) produces a byte-identical file. The file is tracked by DVC, not git:

    python models/risk_score/weights/make_risk_model_onnx.py
    dvc add models/risk_score/risk_score_model/1/model.onnx
    dvc push

Requires ``numpy``, ``onnx``, ``scikit-learn`` and ``skl2onnx``; the last two are not in the
repository's resolves (only this script needs them): run it from a virtual environment that
has them.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Tuple

import numpy as np
import onnx

SEED = 20261206
ROWS = 4000
OPSET = 17
ML_OPSET = 1
IR_VERSION = 8
FEATURE_NAMES = (
    "amount",
    "account_age_days",
    "failed_logins_24h",
    "txn_count_1h",
    "country_mismatch",
    "credit_utilization",
)
INPUT_NAME = "FEATURES"
OUTPUT_NAME = "PROBABILITIES"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "risk_score_model" / "1" / "model.onnx"


def make_data(seed: int = SEED, rows: int = ROWS) -> Tuple[np.ndarray, np.ndarray]:
    """Synthetic transactions and their labels (1 = risky)."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(mean=5.0, sigma=1.2, size=rows)
    account_age = rng.integers(0, 2000, size=rows)
    failed_logins = rng.poisson(0.4, size=rows)
    txn_count = rng.poisson(2.0, size=rows)
    mismatch = rng.random(rows) < 0.1
    utilization = rng.beta(2.0, 3.0, size=rows)
    logit = (
        -4.0
        + 1.2 * np.minimum(amount / 1000.0, 3.0)
        + 1.5 * (account_age < 30)
        + 0.8 * failed_logins
        + 0.3 * txn_count
        + 2.0 * mismatch
        + 2.5 * (utilization - 0.5)
    )
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    features = np.stack(
        [amount, account_age, failed_logins, txn_count, mismatch, utilization], axis=1
    ).astype(np.float32)
    return features, labels


def make_model(features: np.ndarray, labels: np.ndarray) -> onnx.ModelProto:
    """Train, convert, and keep one output (PROBABILITIES): Triton's config lists it alone."""
    from skl2onnx import convert_sklearn  # pants: no-infer-dep (see the module docstring)
    from skl2onnx.common.data_types import FloatTensorType  # pants: no-infer-dep
    from sklearn.ensemble import GradientBoostingClassifier  # pants: no-infer-dep

    trees = GradientBoostingClassifier(
        n_estimators=40, max_depth=3, learning_rate=0.1, random_state=SEED
    ).fit(features, labels)
    model = convert_sklearn(
        trees,
        name="risk_score_model",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_NAMES)]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options={id(trees): {"zipmap": False}},
    )
    # The classifier's label output is not needed (the decision step thresholds the
    # probability): drop it from the graph's outputs and give the probabilities Triton's name.
    kept = [out for out in model.graph.output if out.name == "probabilities"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    model.graph.output[0].name = OUTPUT_NAME
    for node in model.graph.node:
        node.output[:] = [OUTPUT_NAME if name == "probabilities" else name for name in node.output]
    model.ir_version = IR_VERSION
    model.producer_name = "mmepack-make_risk_model_onnx"
    model.producer_version = "1"
    onnx.checker.check_model(model, full_check=True)
    importances = sorted(zip(trees.feature_importances_, FEATURE_NAMES), reverse=True)
    print("feature importances:", ", ".join(f"{name} {value:.3f}" for value, name in importances))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    data = make_model(*make_data()).SerializeToString()
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({len(data)} bytes, md5 {hashlib.md5(data).hexdigest()})")


if __name__ == "__main__":
    main()

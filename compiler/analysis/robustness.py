"""Robustness of a classifier spec: adversarial examples from its torch target, accuracy
on clean and adversarial inputs, the perturbation norms, and whether the examples transfer
to the deployed ONNX model (run in ONNX Runtime).

Labelled data comes from an .npz archive (the model input's array, by its name, and the
labels as `y`, `labels` or `targets`) or, by name, from scikit-learn's `digits` (the test
split; no download).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError
from dlc.analysis.attacks import AttackConfig, adversarial_examples, perturbation_norms
from dlc.analysis.model_function import ModelFunction
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    import torch

LABEL_NAMES = ("y", "labels", "targets", "label")
BUILTIN_DATA = ("digits",)
# The budget check allows no slack: examples are moved inside in exact arithmetic.
BATCH = 512


@dataclass(frozen=True)
class LabelledData:
    inputs: np.ndarray  # the classifier's one input, samples on axis 0
    labels: np.ndarray  # int64 [N]
    source: str


def load_labelled_data(source: str, function: ModelFunction, limit: int | None = None) -> LabelledData:
    """`source`: an .npz path or a built-in data set's name; shaped to the model's input."""
    _require_single_input(function)
    name, shape = function.input_names[0], function.input_shapes[0]
    if source in BUILTIN_DATA:
        inputs, labels = _digits_test_split()
        static = [d for d in shape[1:]]
        if not all(isinstance(d, int) for d in static) or int(np.prod(static)) != 64:
            raise AnalysisError(
                f"--data digits holds 8x8 images (64 values), but input '{name}' is "
                f"[{', '.join(str(d) for d in shape)}]"
            )
        inputs = inputs.reshape(len(inputs), *static)
    else:
        from dlc.runtime import read_inputs

        arrays = read_inputs(source)
        if name not in arrays:
            raise AnalysisError(
                f"{source} has no array named '{name}' (the model's input)",
                hint=f"arrays found: {', '.join(arrays) or 'none'}",
            )
        label_name = next((k for k in LABEL_NAMES if k in arrays), None)
        if label_name is None:
            raise AnalysisError(
                f"{source} has no labels: accuracy needs an integer array named "
                f"one of {', '.join(LABEL_NAMES)}"
            )
        inputs, labels = np.asarray(arrays[name]), np.asarray(arrays[label_name])
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1 or len(labels) != len(inputs):
            raise AnalysisError(
                f"{source}: labels '{label_name}' must be integers, one per sample "
                f"({len(inputs)}), got {labels.dtype} {list(labels.shape)}"
            )
    if not np.issubdtype(inputs.dtype, np.floating):
        raise AnalysisError(f"input '{name}' holds {inputs.dtype}: gradient attacks perturb float inputs")
    if limit is not None:
        inputs, labels = inputs[:limit], labels[:limit]
    return LabelledData(np.ascontiguousarray(inputs, np.float32), labels.astype(np.int64), source)


def _digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to [0, 1]: the 20 % test split (stratified, seed 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    _, test_images, _, test_labels = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    return test_images, test_labels


def _require_single_input(function: ModelFunction) -> None:
    if len(function.input_names) != 1:
        raise AnalysisError(
            f"attacks perturb a classifier's one input; this model has {len(function.input_names)} "
            f"({', '.join(function.input_names)})"
        )


def check_classifier(function: ModelFunction, data: LabelledData) -> int:
    """The class count of the output, after checking that it is one score per class."""
    import torch

    with torch.no_grad():
        scores = function.forward((torch.from_numpy(data.inputs[:1]),))
    if scores.ndim != 2 or scores.shape[1] < 2 or not scores.dtype.is_floating_point:
        raise AnalysisError(
            f"output '{function.output}' has shape {['N', *scores.shape[1:]]}: accuracy needs class "
            "scores [N, classes] (two or more classes)",
            hint="name the classifier's logits with --outputs" if len(function.output_names) > 1 else None,
        )
    classes = int(scores.shape[1])
    if len(data.labels) and (data.labels.min() < 0 or data.labels.max() >= classes):
        raise AnalysisError(
            f"labels in {data.source} range over [{data.labels.min()}, {data.labels.max()}], "
            f"but output '{function.output}' scores {classes} classes"
        )
    return classes


@dataclass
class AttackReport:
    """What an attack did: accuracies (torch, and ONNX Runtime on the same examples), the
    success rate (untargeted: correctly classified inputs whose prediction flipped;
    targeted: inputs not of the target class now predicted as it) and the norms."""

    attack: str
    norm: str
    eps: float
    steps: int
    step_size: float
    target: int | None
    random_start: bool
    bounds: list[float] | None
    samples: int
    clean_accuracy: float
    robust_accuracy: float
    success_rate: float
    linf_max: float
    linf_mean: float
    l2_max: float
    l2_mean: float
    within_budget: bool
    onnx: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttackResult:
    report: AttackReport
    inputs: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    clean_predictions: np.ndarray
    adversarial_predictions: np.ndarray
    onnx_predictions: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "original": self.inputs,
            "adversarial": self.adversarial,
            "labels": self.labels,
            "clean_predictions": self.clean_predictions,
            "adversarial_predictions": self.adversarial_predictions,
        }
        if self.onnx_predictions is not None:
            arrays["onnx_adversarial_predictions"] = self.onnx_predictions
        return arrays


def run_attack(function: ModelFunction, data: LabelledData, config: AttackConfig) -> AttackResult:
    """Attack every sample (in batches of `BATCH`) and measure the torch model."""
    import torch

    check_classifier(function, data)
    if config.target is not None:
        classes = check_classifier(function, data)
        if not 0 <= config.target < classes:
            raise AnalysisError(f"--targeted {config.target} is no class of the {classes} the model scores")

    def logits_of(batch: torch.Tensor) -> torch.Tensor:
        return function.forward((batch,))

    adversarial = np.empty_like(data.inputs)
    for start in range(0, len(data.inputs), BATCH):
        images = torch.from_numpy(data.inputs[start : start + BATCH])
        labels = torch.from_numpy(data.labels[start : start + BATCH])
        adversarial[start : start + BATCH] = adversarial_examples(logits_of, images, labels, config).numpy()
    clean = predict(function, data.inputs)
    attacked = predict(function, adversarial)
    norms = perturbation_norms(data.inputs, adversarial)
    report = AttackReport(
        attack=config.attack,
        norm=config.norm,
        eps=config.eps,
        steps=config.step_count,
        step_size=config.alpha,
        target=config.target,
        random_start=config.random_start,
        bounds=list(config.bounds) if config.bounds is not None else None,
        samples=len(data.labels),
        clean_accuracy=_mean(clean == data.labels),
        robust_accuracy=_mean(attacked == data.labels),
        success_rate=_success_rate(config, data.labels, clean, attacked),
        linf_max=float(norms["linf"].max(initial=0.0)),
        linf_mean=_mean(norms["linf"]),
        l2_max=float(norms["l2"].max(initial=0.0)),
        l2_mean=_mean(norms["l2"]),
        within_budget=bool((norms[config.norm] <= config.eps).all()),
    )
    return AttackResult(report, data.inputs, adversarial, data.labels, clean, attacked)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _success_rate(config: AttackConfig, labels: np.ndarray, clean: np.ndarray, attacked: np.ndarray) -> float:
    if config.target is not None:
        eligible = labels != config.target
        return _mean(attacked[eligible] == config.target)
    eligible = clean == labels
    return _mean(attacked[eligible] != labels[eligible])


def predict(function: ModelFunction, inputs: np.ndarray) -> np.ndarray:
    import torch

    predictions = []
    with torch.no_grad():
        for start in range(0, len(inputs), BATCH):
            scores = function.forward((torch.from_numpy(inputs[start : start + BATCH]),))
            predictions.append(scores.argmax(dim=1).numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)


# The deployed model must compute what the attacked torch model computes on the clean inputs
# (up to float32 differences between runtimes and -O2's rewrites), relative to the scores' scale.
SAME_MODEL_TOLERANCE = 1e-3


def evaluate_on_onnx(result: AttackResult, session: Any, function: ModelFunction, origin: str) -> None:
    """Run the clean and adversarial inputs through the deployed model (an ONNX Runtime
    session) and record its accuracies and agreement with torch in the report. A deployed
    model whose clean scores differ from the torch model's is another model (other weights):
    an error, since the transfer figures would mean nothing."""
    import torch

    input_name, output_name = function.input_names[0], function.output
    clean_scores = _onnx_scores(session, input_name, output_name, result.inputs)
    with torch.no_grad():
        expected = (
            np.concatenate(
                [
                    function.forward((torch.from_numpy(result.inputs[start : start + BATCH]),)).numpy()
                    for start in range(0, len(result.inputs), BATCH)
                ]
            )
            if len(result.inputs)
            else clean_scores
        )
    scale = float(np.abs(expected).max(initial=0.0)) or 1.0
    difference = float(np.abs(clean_scores - expected).max(initial=0.0)) / scale
    if difference > SAME_MODEL_TOLERANCE:
        raise AnalysisError(
            f"{origin} computes other scores than the spec's torch target with these weights "
            f"(largest difference {difference:.3g} of the scores' scale): it is another model",
            hint="give the weights it was compiled with: --weights W",
        )
    clean = clean_scores.argmax(axis=1)
    attacked = _onnx_scores(session, input_name, output_name, result.adversarial).argmax(axis=1)
    result.onnx_predictions = attacked
    result.report.onnx = {
        "model": origin,
        "providers": list(session.providers),
        "clean_accuracy": _mean(clean == result.labels),
        "robust_accuracy": _mean(attacked == result.labels),
        "agreement_with_torch": _mean(attacked == result.adversarial_predictions),
        "clean_score_difference": difference,
    }


def _onnx_scores(session: Any, input_name: str, output_name: str, inputs: np.ndarray) -> np.ndarray:
    scores = []
    for start in range(0, len(inputs), BATCH):
        outputs: Mapping[str, np.ndarray] = session.run({input_name: inputs[start : start + BATCH]})
        if output_name not in outputs:
            raise AnalysisError(
                f"the ONNX model has no output '{output_name}'",
                hint=f"its outputs: {', '.join(outputs)}; it must be compiled from the same spec",
            )
        scores.append(np.asarray(outputs[output_name], dtype=np.float64))
    return np.concatenate(scores) if scores else np.zeros((0, 1))


def onnx_initializers(path: str | Path) -> dict[str, np.ndarray]:
    """The initializers of an ONNX file by name: a spec's parameters when it was compiled
    from that spec (the names are the state_dict keys)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, OSError, ValueError...
        raise AnalysisError(f"cannot read the ONNX model {path}: {error}") from None
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}

"""Analysis of compiled specs with the torch target's gradients: empirical neural tangent
kernels (`dlc.analysis.ntk`) and adversarial robustness (`dlc.analysis.attacks`,
`dlc.analysis.robustness`). Every module here imports torch lazily or only when used, so
`import dlc` stays torch-free."""

from __future__ import annotations

from dlc.errors import DlcError


class AnalysisError(DlcError):
    """Bad input to an analysis: inputs that do not fit the model, a negative budget, an
    output that is no classifier's, an ONNX file where gradients are needed."""

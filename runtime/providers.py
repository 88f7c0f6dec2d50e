"""The execution providers `dlc run --provider` accepts, apart from the session code so
that building the command line does not import numpy or onnxruntime."""

from __future__ import annotations

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDER_NAMES)

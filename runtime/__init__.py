"""Running ONNX models with ONNX Runtime: `Session`, random inputs, .npz inputs."""

from .inputs import random_inputs, read_inputs
from .session import PROVIDER_CHOICES, Session, TensorInfo

__all__ = ["PROVIDER_CHOICES", "Session", "TensorInfo", "random_inputs", "read_inputs"]

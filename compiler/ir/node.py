"""IR values and nodes: small immutable records; the `Graph` owns all mutation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from dlc.errors import Location
from dlc.ir.types import TensorType


def _numpy_array(value: object) -> object:
    from dlc.lazy_imports import numpy as np

    if not isinstance(value, np.ndarray):
        raise ValueError(f"expected a numpy array, not {type(value).__name__}")
    return value


# An attribute holding a numpy array. Annotating it `np.ndarray` would make pydantic import
# numpy when it builds the model class, on every start-up (`dlc.lazy_imports`).
Array = Annotated[Any, AfterValidator(_numpy_array)]


def instance_of(cls: type) -> Any:
    """The annotation of an attribute that must be an instance of `cls`, taken as given:
    pydantic then builds no schema of `cls`'s fields (for a dataclass holding arrays, that
    would import numpy on every start-up)."""

    def check(value: object) -> object:
        if not isinstance(value, cls):
            raise ValueError(f"expected {cls.__name__}, not {type(value).__name__}")
        return value

    return Annotated[Any, AfterValidator(check)]


class OpAttrs(BaseModel):
    """Base of every op's typed attribute model (frozen, unknown fields rejected)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    def describe(self) -> dict[str, Any]:
        """Attributes for printing: plain values, arrays and initializers summarized."""
        described: dict[str, Any] = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            if hasattr(value, "describe"):
                value = value.describe()
            elif hasattr(value, "shape") and hasattr(value, "dtype"):
                shown = f", {value.tolist()}" if value.size <= 8 else ""
                value = f"array({value.dtype}{list(value.shape)}{shown})"
            described[key] = value
        return described


@dataclass(frozen=True)
class Value:
    """An SSA value: a unique name and a tensor type."""

    name: str
    type: TensorType

    def __str__(self) -> str:
        return f"%{self.name}"


@dataclass(frozen=True, eq=False)
class Node:
    """One operation. `module` is the parameter scope it was created in (the torch module
    path for eject); `layer` is the spec layer it came from (for summaries and errors)."""

    name: str
    op: str
    inputs: tuple[Value | None, ...]
    outputs: tuple[Value, ...]
    attrs: OpAttrs
    module: str = ""
    layer: str = ""
    location: Location | None = None

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise ValueError(f"node {self.name} has {len(self.outputs)} outputs, not one")
        return self.outputs[0]

    @property
    def input_values(self) -> tuple[Value, ...]:
        """The inputs that are present (optional inputs may be None)."""
        return tuple(v for v in self.inputs if v is not None)

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)

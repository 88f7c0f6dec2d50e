"""Pydantic models of the spec language (format version 1), top level and templates.

Layers are validated one by one during lowering, against the config model of the block
they name (the block union is whatever the loaded plugins register); here they are kept
as raw YAML data.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dlc.ir.types import DType
from dlc.limits import dim_problem
from dlc.spec.expressions import has_expression
from dlc.spec.sampling import SamplingSection

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
# A layer id or input name, with `.port` for one output of several: never empty.
Reference = Annotated[str, Field(min_length=1)]
# A layer's `id` and a repeat iteration's name: all digits allowed (torchvision's `features.0`).
LAYER_NAME = r"^[A-Za-z0-9_]+$"
TemplateParamType = Literal["int", "float", "bool", "str", "list", "any"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_dim(dim: int | str) -> int | str:
    if isinstance(dim, bool) or (isinstance(dim, int) and dim < 1):
        raise ValueError(f"dims must be positive ints or symbol names such as N, got {dim!r}")
    if isinstance(dim, int) and dim_problem(dim) is not None:
        raise ValueError(dim_problem(dim))
    if isinstance(dim, str) and not dim.isidentifier() and not has_expression(dim):
        raise ValueError(f"symbolic dims must be names such as N or T (or ${{param}}), got {dim!r}")
    return dim


SpecDim = Annotated[int | str, AfterValidator(_check_dim)]


class InputDecl(StrictModel):
    """A model input: its shape (ints and symbolic dims such as `N`) and dtype."""

    shape: list[SpecDim]
    dtype: DType = DType.float32
    range: tuple[float | str, float | str] | None = Field(
        default=None,
        description="Values random inputs are drawn from: [low, high) (token ids: [0, vocab)); "
        "numbers or `${...}` expressions over params.",
    )
    doc: str | None = None

    @field_validator("range")
    @classmethod
    def _check_range(
        cls, value: tuple[float | str, float | str] | None, info: ValidationInfo
    ) -> tuple[float | str, float | str] | None:
        """Numeric bounds are checked here; `${...}` bounds once evaluated (`range_problem`)."""
        if value is None or any(isinstance(bound, str) for bound in value):
            return value
        problem = range_problem(value[0], value[1], info.data.get("dtype", DType.float32))
        if problem:
            raise ValueError(problem)
        return value


def range_problem(low: float, high: float, dtype: DType) -> str | None:
    """Why `[low, high)` is no range to draw `dtype` inputs from, or None. A range must be a
    non-empty interval of finite numbers that the dtype can hold exactly (integer inputs are
    drawn from it), so NaN, 1e30 or 2^63 fail."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"a range must be finite numbers, got [{low}, {high}]"
    if not low < high:
        return f"a range is [low, high) with low < high, got [{low:g}, {high:g}]"
    bound, text = _RANGE_BOUNDS.get(dtype, _EXACT_IN_FLOAT)
    if not (-bound <= low and high <= bound):
        return f"a range of a {dtype.value} input must lie within [-{text}, {text}], got [{low:g}, {high:g}]"
    return None


# Integer inputs draw from [low, high): the bounds must fit the dtype. Other ranges stay
# within what a float64 holds exactly as an integer, far beyond any meaningful input.
_EXACT_IN_FLOAT = (2.0**53, "2^53")
_RANGE_BOUNDS = {
    DType.int8: (2.0**7, "2^7"),
    DType.uint8: (2.0**8, "2^8"),
    DType.int32: (2.0**31, "2^31"),
    DType.int64: _EXACT_IN_FLOAT,
}


class TemplateParam(StrictModel):
    type: TemplateParamType = "any"
    default: Any = None
    required: bool | None = Field(default=None, description="Defaults to true when no default is given.")
    doc: str | None = None


SHORTCUT_NAME_DESCRIPTION = (
    "The shortcut's name, the scope of its parameters (torchvision's ResNet: `downsample`)."
)


class ResidualOptions(StrictModel):
    """`shortcut`: `auto` (identity when shapes match, else a projection), `identity`, or
    a list of layers. `projection`: the layers `auto` uses when shapes differ."""

    shortcut: Literal["auto", "identity"] | list[Any] = "auto"
    projection: list[Any] | None = None
    name: Annotated[str, Field(pattern=LAYER_NAME)] = Field("shortcut", description=SHORTCUT_NAME_DESCRIPTION)
    condition: bool | str = Field(
        default=True,
        alias="if",
        description="`${...}`: add the shortcut only when true (MobileNetV2: stride 1, equal channels).",
    )


class ResidualLayer(StrictModel):
    """The long form of a `residual` layer; the short form is just the body list."""

    body: list[Any] = Field(min_length=1)
    shortcut: Literal["auto", "identity"] | list[Any] = "auto"
    projection: list[Any] | None = None
    name: Annotated[str, Field(pattern=LAYER_NAME)] = Field("shortcut", description=SHORTCUT_NAME_DESCRIPTION)
    post: list[Any] = Field(default_factory=list)


class TemplateDef(StrictModel):
    """A user block: typed parameters, a body of layers, an optional residual connection
    around the body and `post` layers after it."""

    doc: str | None = None
    params: dict[Identifier, TemplateParamType | TemplateParam] = Field(default_factory=dict)
    inputs: list[Identifier] = Field(default_factory=lambda: ["input"], min_length=1)
    body: list[Any] = Field(min_length=1)
    residual: ResidualOptions | None = None
    post: list[Any] = Field(default_factory=list)
    outputs: list[Reference] | dict[Identifier, Reference] | None = None


class SpecModel(StrictModel):
    """The top level of a spec file."""

    dlc: Literal[1] = Field(description="Spec format version; this dlc reads version 1.")
    name: str = Field(min_length=1)
    doc: str | None = None
    inputs: dict[Identifier, InputDecl] = Field(min_length=1)
    params: dict[Identifier, Any] = Field(default_factory=dict)
    blocks: dict[Identifier, TemplateDef] = Field(default_factory=dict)
    layers: list[Any] = Field(min_length=1)
    outputs: list[Reference] | dict[Identifier, Reference] | None = None
    parameterization: Literal["standard", "ntk"] = Field(
        default="standard",
        description="standard: torch's initialization; ntk: linear and conv weights drawn from N(0, 1) "
        "and scaled by 1/sqrt(fan_in) in the forward pass (Jacot et al.), biases N(0, 1).",
    )
    training: dict[str, Any] | None = Field(
        default=None,
        description="How `dlc train` trains the model: data, objective, optimizer, epochs "
        "(checked by `dlc.training.config.TrainingConfig`).",
    )
    sampling: SamplingSection | None = Field(
        default=None,
        description="A diffusion sampler around this noise-predicting network (`dlc compile --sampler`).",
    )


COMMON_LAYER_KEYS = ("id", "in", "if", "share")
REPEAT_KEYS = ("repeat", "as", "start", "name", "flat", "input", "body", *COMMON_LAYER_KEYS)
RESIDUAL_KEYS = ("residual", *COMMON_LAYER_KEYS)
SCAN_KEYS = ("scan", "id", "if", "share")  # a scan reads its inputs from `over` and `carry`, not `in`


class ScanOptions(StrictModel):
    """A loop whose `body` runs once per step. `over` names the sequences sliced along
    `axis` (one slice per step), or `steps` gives the count for a loop with nothing to
    scan. `carry` names the states and their initial values; `next` says which body layer
    gives each state's next value; `outputs` names per-step values, stacked along `axis`.
    `index` names the step number t (float32 [1]) inside the body; `reverse` runs the
    steps last to first (outputs stay in step order)."""

    over: dict[Identifier, Reference] = Field(default_factory=dict)
    steps: int | None = Field(default=None, ge=1)
    axis: int = 1
    reverse: bool = False
    index: Identifier | None = None
    carry: dict[Identifier, Reference] = Field(default_factory=dict)
    body: list[Any] = Field(min_length=1)
    next: dict[Identifier, Reference] = Field(default_factory=dict)
    outputs: dict[Identifier, Reference] = Field(default_factory=dict)

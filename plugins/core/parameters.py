"""`parameter`: a free learned tensor (layer scale, RMSNorm-style weights, class tokens,
position tables, flow scales), with its shape, initializer, state_dict name and whether
it is trained (`trainable: false` makes a buffer).

The layer's output is the tensor itself, so other layers take it with `in:`:

    - parameter: {shape: [1, 1, 768], init: {trunc_normal: {std: 0.02}}, name: class_token}
      id: cls

Its state_dict key is ``<layer>.weight`` (``cls.weight``), or, with `name:`, exactly
``<scope>.<name>`` (``class_token`` at the top level, ``encoder.block1.gamma`` inside a
template instance ``encoder.block1``), so checkpoints with bare tensors load as they are.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from dlc.ir.init import Init
from dlc.plugin_api import BlockConfig, BlockContext, BlockType, DType, Value, init

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NormalInit(_Options):
    std: float = Field(1.0, gt=0)
    mean: float = 0.0


class UniformInit(_Options):
    low: float = 0.0
    high: float = 1.0


class InitChoice(_Options):
    """One initializer: write exactly one key (or a bare name: `zeros`, `ones`, `normal`,
    `uniform`, `trunc_normal`)."""

    constant: float | None = None
    normal: NormalInit | None = None
    uniform: UniformInit | None = None
    trunc_normal: NormalInit | None = Field(
        None, description="Normal, redrawn outside mean +- 2 std (torch's trunc_normal_)."
    )

    def to_init(self) -> Init:
        chosen = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"give exactly one initializer, got {chosen or 'none'}")
        if self.constant is not None:
            return init.constant(self.constant)
        if self.normal is not None:
            return init.normal(self.normal.std, self.normal.mean)
        if self.uniform is not None:
            if self.uniform.low > self.uniform.high:
                raise ValueError(f"uniform: low {self.uniform.low} is above high {self.uniform.high}")
            return Init("uniform", self.uniform.low, self.uniform.high)
        assert self.trunc_normal is not None
        return init.truncated_normal(self.trunc_normal.std, self.trunc_normal.mean)


_NAMED_INITS = {
    "zeros": {"constant": 0.0},
    "ones": {"constant": 1.0},
    "normal": {"normal": {}},
    "uniform": {"uniform": {}},
    "trunc_normal": {"trunc_normal": {}},
}


def _named_init(value: Any) -> Any:
    """A bare initializer name is short for its mapping with default options."""
    if isinstance(value, str):
        if value not in _NAMED_INITS:
            names = ", ".join(_NAMED_INITS)
            raise ValueError(f"unknown initializer '{value}'; use {names}, or {{constant: v}}")
        return _NAMED_INITS[value]
    return value


_OPTIONS_SCHEMA = {"type": "object", "additionalProperties": {"type": "number"}}
_INIT_SCHEMA = {
    "anyOf": [
        {"type": "string", "enum": list(_NAMED_INITS)},
        {
            "type": "object",
            "properties": {
                "constant": {"type": "number"},
                "normal": _OPTIONS_SCHEMA,
                "uniform": _OPTIONS_SCHEMA,
                "trunc_normal": _OPTIONS_SCHEMA,
            },
            "additionalProperties": False,
            "minProperties": 1,
            "maxProperties": 1,
        },
    ]
}


class ParameterConfig(BlockConfig):
    shape: list[int] = Field(description="The tensor's shape: ints or `${...}` expressions (>= 1).")
    init: Annotated[InitChoice, BeforeValidator(_named_init), WithJsonSchema(_INIT_SCHEMA)] = Field(
        default_factory=lambda: InitChoice(constant=0.0),
        description="zeros (default), ones, normal, uniform, trunc_normal, or one of {constant: v}, "
        "{normal: {std, mean}}, {uniform: {low, high}}, {trunc_normal: {std, mean}}.",
    )
    name: str | None = Field(
        None,
        pattern=_NAME,
        description="The state_dict key inside the layer's scope (`gamma`); default `<layer>.weight`.",
    )
    trainable: bool = Field(True, description="false: a buffer (saved, not trained).")
    dtype: DType = Field(DType.float32, description="The element type.")

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: list[int]) -> list[int]:
        if any(d < 1 for d in shape):
            raise ValueError(f"dims must be >= 1, got {shape}")
        return shape

    @field_validator("init")
    @classmethod
    def _one_initializer(cls, value: InitChoice) -> InitChoice:
        value.to_init()  # raises on zero or several initializers
        return value

    def initializer(self) -> Init:
        return self.init.to_init()


def _parameter_block(ctx: BlockContext, config: ParameterConfig, inputs: list[Value]) -> Value:
    key = None
    if config.name is not None:
        scope = ctx.name.rpartition(".")[0]
        key = f"{scope}.{config.name}" if scope else config.name
    return ctx.param(
        "weight",
        tuple(config.shape),
        config.initializer(),
        dtype=config.dtype,
        trainable=config.trainable,
        key=key,
    )


BLOCKS = [
    BlockType(
        "parameter",
        ParameterConfig,
        _parameter_block,
        "A learned tensor of a given shape and initializer (layer scale, class token, positions).",
        inputs=(0, 0),
        shorthand="shape",
    ),
]
OPS: list = []

"""Deep Sets' permutation-equivariant layer (Zaheer et al. 2017), as the authors' PyTorch
code writes it (manzilzaheer/DeepSets, PointClouds/classifier.py), with its parameter
names, so the reference's state_dict loads as it is:

- PermEqui1_max / PermEqui1_mean: ``Gamma(x - pool(x))``, Gamma a Linear with bias;
- PermEqui2_max / PermEqui2_mean: ``Gamma(x) - Lambda(pool(x))``, Lambda a Linear without
  bias (the "Lambda term"),

where pool is the max or the mean over the set's elements, kept as [N, 1, F] and
broadcast back over them. Permuting the elements of x permutes the output rows the same
way: each row sees only itself and a symmetric summary of the set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, Value, init

from .set_pooling import check_set_inputs


class PermEquivariantConfig(BlockConfig):
    out: int = Field(ge=1, description="Output features per element; input features are inferred.")
    pool: Literal["max", "mean"] = Field(
        "max", description="The set summary subtracted from each element: PermEqui*_max or PermEqui*_mean."
    )
    lambda_term: bool = Field(
        False,
        description="PermEqui2: Gamma(x) - Lambda(pool(x)) with a bias-free Lambda; "
        "false: PermEqui1, Gamma(x - pool(x)).",
    )


def _linear(ctx: BlockContext, name: str, x: Value, out: int, features: int, bias: bool) -> Value:
    """nn.Linear(features, out) named `name` (Gamma, Lambda), initialized as torch does."""
    with ctx.sub_scope(name):
        weight = ctx.param("weight", (out, features), init.fan_in_uniform(features))
        params = [weight, ctx.param("bias", (out,), init.fan_in_uniform(features))] if bias else [weight]
        return ctx.op("linear", x, *params)


def _perm_equivariant_block(ctx: BlockContext, config: PermEquivariantConfig, inputs: list[Value]) -> Value:
    x, mask = check_set_inputs(ctx, inputs)
    features = x.type.shape[2]
    if not isinstance(features, int):
        raise ctx.error(f"the set's feature dim must be static, got {ctx.describe(x)}")
    pooled = ctx.op("set_pool", *([x] if mask is None else [x, mask]), reduce=config.pool, keepdims=True)
    if not config.lambda_term:
        return _linear(ctx, "Gamma", ctx.op("sub", x, pooled), config.out, features, bias=True)
    gamma = _linear(ctx, "Gamma", x, config.out, features, bias=True)
    return ctx.op("sub", gamma, _linear(ctx, "Lambda", pooled, config.out, features, bias=False))


BLOCKS = [
    BlockType(
        "perm_equivariant",
        PermEquivariantConfig,
        _perm_equivariant_block,
        "Deep Sets' permutation-equivariant layer on sets [N, M, F] -> [N, M, out]: Gamma(x - pool(x)) "
        "(PermEqui1), or Gamma(x) - Lambda(pool(x)) with `lambda_term` (PermEqui2); pool max or mean; "
        "`in: [x, mask]` pools only the unpadded elements",
        inputs=(1, 2),
        shorthand="out",
    ),
]

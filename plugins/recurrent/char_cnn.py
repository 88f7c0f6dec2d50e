"""The `char_cnn` block: a word's characters to a fixed-size vector (Kim et al. 2016,
"Character-aware neural language models"; ELMo's character encoder).

    ids [..., C] -> embedding [..., C, dim] -> per filter (width k, count n):
        conv1d over the C characters [n, C - k + 1] -> max over positions [n] -> activation
    -> concatenated [..., sum n]

applied to every token at once: the leading dims (N, T) are merged into one batch for the
convolutions and split again (as `time_distributed` does). Built from the CNN family's
`conv1d` and `global_max_pool` blocks and core's `embedding`; parameters
`<id>.char_embedding.weight` and `<id>.char_conv_<i>.weight/bias` (AllenNLP's conv names).
The activation follows the max, as in bilm-tf and AllenNLP.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dlc.plugin_api import BlockConfig, BlockContext, BlockType, DType, Value


class CharCnnConfig(BlockConfig):
    vocab: int = Field(ge=1, description="Number of character ids (ELMo: 262, id 0 for padding).")
    dim: int = Field(ge=1, description="Size of the character embeddings (ELMo: 16).")
    filters: list[tuple[int, int]] = Field(
        min_length=1,
        description="[width, count] per filter bank, e.g. ELMo's [[1, 32], [2, 32], [3, 64], [4, 128], "
        "[5, 256], [6, 512], [7, 1024]].",
    )
    activation: Literal["relu", "tanh"] = Field("relu", description="Applied to each filter's maximum.")
    padding_idx: int | None = Field(None, ge=0, description="A character id whose embedding stays zero.")

    @field_validator("filters")
    @classmethod
    def _positive(cls, filters: list[tuple[int, int]]) -> list[tuple[int, int]]:
        for width, count in filters:
            if width < 1 or count < 1:
                raise ValueError(f"each filter is [width, count] with both >= 1, got [{width}, {count}]")
        return filters


def _lower(ctx: BlockContext, config: CharCnnConfig, inputs: list[Value]) -> Value:
    ids = inputs[0]
    shape = ids.type.shape
    if ids.type.rank < 2 or ids.type.dtype not in (DType.int64, DType.int32):
        raise ctx.error(
            f"expects integer character ids [..., characters] (e.g. [N, T, 50]), got {ids.type}",
            hint="declare the input with dtype: int64",
        )
    characters = shape[-1]
    widest = max(width for width, _ in config.filters)
    if isinstance(characters, int) and characters < widest:
        raise ctx.error(f"tokens of {characters} characters are shorter than the widest filter ({widest})")
    embedding = {"vocab": config.vocab, "dim": config.dim, "padding_idx": config.padding_idx}
    embedded = ctx.block_call("embedding", embedding, [ids], name="char_embedding")  # [..., C, dim]
    if ids.type.rank > 2:
        embedded = ctx.op("flatten", embedded, start=0, end=ids.type.rank - 2)  # tokens [B, C, dim]
    channels_first = ctx.op("transpose", embedded, perm=(0, 2, 1))  # [B, dim, C]
    features = []
    for index, (width, count) in enumerate(config.filters):
        convolved = ctx.block_call(
            "conv1d", {"out": count, "kernel": width}, [channels_first], name=f"char_conv_{index}"
        )  # [B, count, C - width + 1]
        peak = ctx.block_call("global_max_pool", {"keepdims": False}, [convolved], name=f"max_{index}")
        features.append(ctx.op(config.activation, peak))  # [B, count]
    merged = ctx.op("concat", *features, axis=1) if len(features) > 1 else features[0]
    if ids.type.rank == 2:
        return merged
    total = sum(count for _, count in config.filters)
    return ctx.op("reshape", merged, ids, shape=(*shape[:-1], total))  # [..., total]


BLOCKS = [
    BlockType(
        "char_cnn",
        CharCnnConfig,
        _lower,
        "Character ids [..., C] -> embedding -> conv1d filter banks -> max over positions -> "
        "activation, concatenated [..., sum of counts]; every token at once.",
    )
]

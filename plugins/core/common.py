"""Helpers shared by the core family's modules: option-less configs, one-op blocks and
sample inputs for the registry parity test."""

from __future__ import annotations

from typing import Any

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import BlockConfig, BlockContext, OpSample, Value


class NoOptions(BlockConfig):
    pass


def sample_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(100 + seed)


def sample_array(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    """Standard-normal float32 samples; `positive` shifts them into (0.1, ...) for log, sqrt."""
    values = rng.standard_normal(shape).astype(np.float32)
    return np.abs(values) + 0.1 if positive else values


def simple_block(op: str):
    """A block whose options are exactly its op's attributes (lists become tuples)."""

    def lower(ctx: BlockContext, config: BlockConfig, inputs: list[Value]) -> Value:
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model_dump().items()}
        return ctx.op(op, *inputs, **options)

    return lower


def one_input_samples(attrs: dict[str, Any], positive: bool = False):
    """A samples function: one [3, 5] float input with the given attributes."""

    def samples() -> list[OpSample]:
        return [OpSample((sample_array(sample_rng(3), 3, 5, positive=positive),), attrs, name="2d")]

    return samples

"""What a layer's options may read about its inputs: ``${input.shape[1]}``,
``${input.rank}``, ``${inputs[1].shape[-1]}``. A depthwise conv then needs no hand-passed
channel count (``groups: "${input.shape[1]}"``).

Only layers whose options mention `input` / `inputs` resolve their inputs before their
options are expanded; the others keep checking options first, so a layer downstream of a
broken one still reports its own errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dlc.ir.node import Value

_MENTION = re.compile(r"\binputs?\b")


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's type as expressions see it: static dims are ints, symbolic ones their
    names (``N``)."""

    shape: tuple[int | str, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    @staticmethod
    def of(value: Value) -> TensorInfo:
        dims = tuple(d if isinstance(d, int) else str(d) for d in value.type.shape)
        return TensorInfo(dims, str(value.type.dtype))


def mentions_input(raw: Any) -> bool:
    """Whether an expression in `raw` (a layer's options, nested) names `input` or `inputs`."""
    if isinstance(raw, str):
        return "${" in raw and _MENTION.search(raw) is not None
    if isinstance(raw, dict):
        return any(mentions_input(v) for v in raw.values())
    if isinstance(raw, list):
        return any(mentions_input(v) for v in raw)
    return False


def input_names(values: Sequence[Value], env: dict[str, Any]) -> dict[str, Any]:
    """`env` plus `input` (the first input) and `inputs` (all), unless the spec defines
    those names itself."""
    infos = [TensorInfo.of(v) for v in values]
    extra: dict[str, Any] = {"inputs": infos}
    if infos:
        extra["input"] = infos[0]
    return {**extra, **env}

"""Did-you-mean suggestions for misspelled keys, block names, references and parameters."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], limit: int = 3, cutoff: float = 0.6) -> list[str]:
    """The candidates most similar to `word`, best first (case-insensitive)."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=limit, cutoff=cutoff)
    return [lowered[m] for m in matches]


# What other frameworks call dlc's blocks: suggested before any spelling-based guess.
BLOCK_SYNONYMS: dict[str, str] = {
    "clamp": "clip",
    "hardtanh": "clip",
    "swish": "silu",
    "hard_swish": "hardswish",
    "hard_sigmoid": "hardsigmoid",
    "dense": "linear",
    "fc": "linear",
    "cat": "concat",
    "concatenate": "concat",
    "permute": "transpose",
    "view": "reshape",
    "batchnorm": "batch_norm",
    "batchnorm2d": "batch_norm",
    "layernorm": "layer_norm",
    "groupnorm": "group_norm",
    "instancenorm": "instance_norm",
    "rmsnorm": "rms_norm",
    "mean": "reduce_mean",
    "sum": "reduce_sum",
    "take": "gather",
    "index_select": "gather",
    "min": "minimum",
    "max": "maximum",
    "square": "pow",
    "conv": "conv2d",
}


def block_suggestions(word: str, candidates: Iterable[str]) -> list[str]:
    """Blocks to suggest for an unknown block name: a known synonym (`clamp` -> `clip`),
    else close spellings. The cutoff is stricter than for keys, so an unrelated block of
    another family (`clamp` -> `lstmp`) is not offered."""
    pool = set(candidates)
    synonym = BLOCK_SYNONYMS.get(word.lower())
    if synonym in pool:
        return [synonym]
    return closest(word, pool, cutoff=0.7)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint such as ``did you mean 'linear'?``, or None when nothing is close."""
    matches = closest(word, candidates)
    if not matches:
        return None
    quoted = " or ".join(f"'{m}'" for m in matches)
    return f"did you mean {quoted}?"

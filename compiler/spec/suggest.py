"""Did-you-mean suggestions for misspelled keys, block names, references and parameters."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates most similar to `word`, best first (case-insensitive)."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[m] for m in matches]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint such as ``did you mean 'linear'?``, or None when nothing is close."""
    matches = closest(word, candidates)
    if not matches:
        return None
    quoted = " or ".join(f"'{m}'" for m in matches)
    return f"did you mean {quoted}?"

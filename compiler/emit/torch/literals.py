"""Text from a spec made safe to place in generated Python (`model.py`).

A spec's `name` and its file name reach the module docstring; float options reach the
code as `repr` text, where infinity and NaN print as the bare names `inf` and `nan`. No
spec may break `model.py` or inject code into it: docstring text is escaped here, and the
module defines `inf` and `nan` when its code uses them (`x * inf` then means what it says).
"""

from __future__ import annotations

import re

_NONFINITE = re.compile(r"\b(inf|nan)\b")
NONFINITE_NAMES = frozenset({"inf", "nan"})


def docstring_text(text: str) -> str:
    """`text` as it may appear inside a triple-quoted docstring: backslashes and quotes
    escaped, and every unprintable character (NUL, CR, U+2028...) as an escape."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in escaped)


def nonfinite_definitions(code: str) -> list[str]:
    """Module-level definitions of the non-finite float names `code` uses."""
    used = sorted(set(_NONFINITE.findall(code)))
    return [f'{name} = float("{name}")' for name in used]

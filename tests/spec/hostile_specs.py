"""Hostile spec generators for the fuzzer: every spec in `specs/`, mutated by an attacker.

Besides the gentle mutations of `test_fuzz_specs.py` (valid YAML, plausible values), these
produce what a careless or hostile author writes: deep nesting, huge numbers, Python and
unknown tags, alias bombs, long strings, odd Unicode, hostile `${...}` expressions, and raw
text damage (control characters, truncation, broken indentation, invalid UTF-8). Each
generator takes a `random.Random`, so a run is reproduced by its seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import yaml

from tests.conftest import SPECS

SEED_TEXTS: list[tuple[str, str]] = [
    (str(path.relative_to(SPECS)), path.read_text()) for path in sorted(SPECS.rglob("*.yaml"))
]

DEEP = (10, 99, 100, 101, 150, 1_000, 5_000)
NUMBERS = (
    "0",
    "-1",
    "1000000000",
    "9" * 19,
    "9" * 309,
    "9" * 4_300,
    "9" * 4_301,
    "1" * 5_000,
    "-" + "9" * 40,
    "0x" + "f" * 100,
    "1e309",
    "-1e309",
    ".inf",
    "-.inf",
    ".nan",
    "0o777",
    "1_000_000",
    "1e-400",
    "2.5",
    "-0.0",
    "${10**12}",
    "${2**63}",
    "${-2**63}",
)
TAGGED = (
    "!!python/name:os.system x",
    "!!python/object/apply:os.system [ls]",
    "!!python/object:os.Foo {a: 1}",
    "!foo bar",
    "!foo [1]",
    "!!binary aGVsbG8=",
    "!!binary '*'",
    "!!timestamp 2001-12-14",
    "!!timestamp 2020-13-45",
    "!!set {a}",
    "!!omap [{a: 1}]",
    "!!pairs [{a: 1}]",
    "!!int abc",
    "!!int 12",
    "!!float x",
    "!!float 1.5",
    "!!bool maybe",
    "!!bool yes",
    "!!str 1",
    "!!null ''",
    "!<tag:example.com,2000:x> y",
    "!!map [1]",
    "!!seq {a: 1}",
    "!!merge x",
    "!!value =",
    "=",
    "<<",
    "*undefined",
    "&anchor [1, *anchor]",
)
EXPRESSIONS = (
    "10**10**10",
    "range(10**12)",
    "sum(range(10**10))",
    "len(range(10**9))",
    "'a' * 10**9",
    "[1] * 10**8",
    "-" * 5_000 + "1",
    "not " * 3_000 + "1",
    "+".join(["1"] * 4_000),
    "'a'.ljust(10**10)",
    "'a'.replace('', 'b' * 10**5)",
    "2**1024",
    "2**1023 * 2",
    "1 << 2000",
    "(9**400000) * 3",
    "round(10**300, -10**9)",
    "1/0",
    "int('x')",
    "max([])",
    "[][0]",
    "{}['a']",
    "x.__class__",
    "().__class__.__bases__",
    "(1).real",
    "'%s' % 1",
    "f'{1:>1000000}'",
    "[x for x in range(10**6)]",
    "{1: 2}[1]",
    "min(1)",
    "float('nan')",
    "int(float('inf'))",
    "sqrt(-1)",
    "log2(0)",
    "abs",
    "range",
    "lambda: 1",
    "__import__('os')",
    "width" * 100,
    "${1}",
    "'${'",
    "1 if 1 else",
    "'" + "a" * 20_000 + "'",
)
UNICODE = (
    '"\\u202e\\u200b\\ufeff"',
    '"\\0"',
    '"\\x07"',
    '"\\ud800"',
    '"\\U0010ffff"',
    "ﬁ",
    "Ω",
    "😀",
    '"a\\nb"',
    '"\\r"',
    '"\\u2028"',
    "ｗｉｄｔｈ",
    "İ",
    "ǅ",
    "\u0301a",
)
RAW_CHARACTERS = ("\0", "\x07", "\x1b", "\t", "\u2028", "\ud800", "\ufeff", "\x85", "\r", "#", ":", "-")
RAW_TOKENS = (
    ": ",
    "- ",
    "&a ",
    "*a ",
    "!! ",
    "!foo ",
    "? ",
    "{",
    "[",
    "'",
    '"',
    "|",
    ">",
    "%YAML 1.1\n",
    "---\n",
)


def _deep_fragment(rng: random.Random) -> str:
    depth = rng.choice(DEEP)
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return "{a: " * depth + "1" + "}" * depth


def _alias_bomb(rng: random.Random) -> str:
    width, levels = rng.choice((2, 5, 9, 10)), rng.choice((3, 6, 9, 12))
    parts = [f"&l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels + 1):
        parts.append(f"&l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "[" + ", ".join(parts) + "]"


def _long_string(rng: random.Random) -> str:
    return "'" + rng.choice("ab ${}:") * rng.choice((1_000, 100_000, 400_000)) + "'"


FRAGMENTS: tuple[Callable[[random.Random], str], ...] = (
    _deep_fragment,
    _alias_bomb,
    _long_string,
    lambda rng: rng.choice(NUMBERS),
    lambda rng: rng.choice(TAGGED),
    lambda rng: "'${" + rng.choice(EXPRESSIONS).replace("'", "''") + "}'",
    lambda rng: rng.choice(UNICODE),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def structural_mutant(rng: random.Random, text: str) -> str:
    """Replace or add values at random paths with raw hostile YAML fragments."""
    data = yaml.safe_load(text)
    fragments = {}
    for index in range(rng.choice((1, 1, 2, 3))):
        marker = f"__HOSTILE_{index}__"
        fragments[marker] = rng.choice(FRAGMENTS)(rng)
        paths = [p for p in _paths(data) if p]
        path = rng.choice(paths)
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and rng.random() < 0.25:
            parent[rng.choice(["id", "in", "out", "repeat", "shape", "range", "kernel", marker])] = marker
        elif isinstance(parent, list) and rng.random() < 0.25:
            parent.insert(path[-1], marker)
        else:
            parent[path[-1]] = marker
    mutated = yaml.safe_dump(data, sort_keys=False, width=2**30, allow_unicode=True)
    for marker, fragment in fragments.items():
        mutated = mutated.replace(f"'{marker}'", fragment).replace(marker, fragment)
    return mutated


def textual_mutant(rng: random.Random, text: str) -> str:
    """Damage the raw text: stray characters and tokens, lost or doubled lines, truncation."""
    for _ in range(rng.choice((1, 2, 3))):
        action = rng.choice(("character", "token", "delete", "duplicate", "indent", "truncate"))
        position = rng.randrange(len(text) + 1)
        lines = text.split("\n")
        line = rng.randrange(len(lines))
        if action == "character":
            text = text[:position] + rng.choice(RAW_CHARACTERS) + text[position:]
        elif action == "token":
            text = text[:position] + rng.choice(RAW_TOKENS) + text[position:]
        elif action == "delete":
            text = "\n".join(lines[:line] + lines[line + 1 :])
        elif action == "duplicate":
            text = "\n".join(lines[: line + 1] + lines[line:])
        elif action == "indent":
            lines[line] = " " * rng.choice((1, 3, 200)) + lines[line]
            text = "\n".join(lines)
        else:
            text = text[:position]
    return text


def byte_mutant(rng: random.Random, text: str) -> bytes:
    """Invalid UTF-8, foreign byte-order marks, or NULs in the file's bytes."""
    data = bytearray(text.encode())
    choice = rng.choice(("flip", "bom16", "bom32", "latin1"))
    if choice == "flip":
        for _ in range(rng.choice((1, 3))):
            data[rng.randrange(len(data))] = rng.choice((0x00, 0x80, 0xC0, 0xE9, 0xFF))
        return bytes(data)
    if choice == "bom16":
        return b"\xff\xfe" + text.encode("utf-16-le")
    if choice == "bom32":
        return b"\x00\x00\xfe\xff" + text.encode("utf-32-be")
    return (text + "# café\n").encode("latin-1", errors="replace")


def hostile_case(rng: random.Random) -> tuple[str, str | bytes]:
    """(seed spec name, the mutant as text, or as bytes for a file)."""
    name, text = rng.choice(SEED_TEXTS)
    kind = rng.random()
    if kind < 0.6:
        return name, structural_mutant(rng, text)
    if kind < 0.9:
        return name, textual_mutant(rng, text)
    return name, byte_mutant(rng, text)

"""`dlc completion bash|zsh|fish`: completion scripts generated from the argparse parser by
shtab, so every command, option and choice the parser knows is completed, and a new flag
needs no hand-written script. Arguments that name files complete as file names."""

from __future__ import annotations

import argparse

# Destinations of arguments that take a path (completed as files, not as words).
PATH_ARGUMENTS = frozenset({"spec", "model", "output", "weights", "inputs"})


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    import shtab

    _mark_paths(parser, shtab.FILE)
    script = shtab.complete(parser, shell=shell)
    return script if script.endswith("\n") else script + "\n"


def _mark_paths(parser: argparse.ArgumentParser, file_completion: dict[str, str]) -> None:
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if action.dest in PATH_ARGUMENTS:
            action.complete = file_completion  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _mark_paths(subparser, file_completion)

"""What the analysis commands (`dlc ntk`, `dlc attack`, `dlc summary --robustness`) share:
staged output files, option types and the model options. `dlc.cli` registers the commands
through `add_commands`; the handlers live in `ntk_command` and `attack_command` and import
torch only when a command runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc.analysis import AnalysisError

if TYPE_CHECKING:
    import numpy as np

SPEC_SUFFIXES = (".yaml", ".yml")


def write_npz(arrays: Mapping[str, np.ndarray], destination: Path) -> Path:
    """Stage the archive beside `destination`, then move it into place."""
    import numpy as np

    from dlc.emit.files import publish, staging_directory

    with staging_directory(destination) as staging:
        staged = staging / "arrays.npz"
        np.savez(staged, **arrays)
        return publish(staged, destination)


def write_png(draw: Callable[[Path], Path], destination: Path) -> Path:
    from dlc.emit.files import publish, staging_directory

    with staging_directory(destination) as staging:
        return publish(draw(staging / "picture.png"), destination)


def require_spec(path: str, command: str) -> None:
    if Path(path).suffix not in SPEC_SUFFIXES:
        raise AnalysisError(
            f"dlc {command} needs a spec (.yaml): the gradients come from its torch target, "
            f"and {path} is not one",
            hint=f"give the spec the model was compiled from: dlc {command} SPEC.yaml --weights W",
        )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def add_weights_and_seed(parser: argparse.ArgumentParser) -> None:
    from dlc.cli import _seed

    parser.add_argument(
        "--weights", help="trained weights (.safetensors, or a PyTorch state_dict); default: the seeded init"
    )
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the weight initialization (default 0)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    add_weights_and_seed(parser)
    parser.add_argument("--outputs", metavar="NAME", help="the model output to analyse (default: the first)")


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register `dlc ntk` and `dlc attack` on the `dlc` subcommand parsers."""
    from dlc.analysis.attack_command import add_attack_command
    from dlc.analysis.ntk_command import add_ntk_command

    add_ntk_command(commands, parents)
    add_attack_command(commands, parents)

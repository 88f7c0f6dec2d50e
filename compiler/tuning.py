"""`dlc tune`: plugins calibrate their cost models on this machine.

A plugin returns `Tuner` records from the `dlc_tuners` hook; `dlc tune` runs each, and each
stores its measurements in the user's cache directory for later compiles to use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tuner:
    """`run(quick)` measures, stores the calibration and returns a short report."""

    name: str
    description: str
    run: Callable[[bool], str]
    plugin: str = ""

"""`python -m dlc`: the same command line as `dlc`."""

from dlc.cli import run

run()

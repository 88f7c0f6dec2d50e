"""`python -m dlc`: the same command line as `dlc`."""

import sys

from dlc.cli import main

sys.exit(main())

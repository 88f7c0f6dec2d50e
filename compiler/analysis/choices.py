"""The names the analysis commands offer, importable without numpy or torch (the command
line's parser lists them at every start)."""

from __future__ import annotations

NTK_MODES = ("full", "per-output", "trace")
NTK_METHODS = ("jacobian", "products")
ATTACKS = ("fgsm", "pgd", "pgd-l2", "cw")
# The norm of each attack's budget.
NORMS = {"fgsm": "linf", "pgd": "linf", "pgd-l2": "l2", "cw": "l2"}

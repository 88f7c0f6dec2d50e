"""numpy, imported on first use.

numpy takes a sixth of `dlc validate`'s start-up (about 0.05 s of 0.3 s) although checking
a spec never computes with an array: the IR's types, the spec lowering and the op modules
use numpy only when weights are drawn, constants folded, ONNX emitted or a model run. Those
modules write ``from dlc.lazy_imports import numpy as np``: the same module object as
``import numpy as np`` from the first attribute read on, and no import before it.
(`importlib.util.LazyLoader` cannot do this on Python 3.11: an ``import numpy`` statement
reads the module's ``__spec__``, which loads it.)
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any


class _OnFirstUse(types.ModuleType):
    """Stands for module `name`; imports it when an attribute is first read and copies its
    namespace in, so later reads cost what a module's do."""

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attribute)


if TYPE_CHECKING:
    import numpy
else:
    numpy = _OnFirstUse("numpy")

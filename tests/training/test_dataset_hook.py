"""The `dlc_datasets` hook: a third-party dataset registers like any plugin record."""

from __future__ import annotations

import numpy as np
import pluggy

from dlc import hookspecs
from dlc.plugin_api import DatasetArrays, DatasetInfo, hookimpl
from dlc.registry import _collect


class _SquaresPlugin:
    @hookimpl
    def dlc_datasets(self) -> list[DatasetInfo]:
        def load(options, seed):
            x = np.arange(10, dtype=np.float32)[:, None]
            return DatasetArrays({"x": x, "y": x**2}, features="x", target="y")

        return [DatasetInfo("squares", "x and x^2", load)]


def test_a_plugin_dataset_is_collected_with_its_plugin_name() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(_SquaresPlugin(), name="squares_plugin")
    records = _collect(manager, "squares_plugin")["dlc_datasets"]
    assert [(r.name, r.plugin) for r in records] == [("squares", "squares_plugin")]
    arrays = records[0].load({}, 0)
    assert arrays.arrays["y"][3, 0] == 9.0

"""The recurrent family: Elman RNN, LSTM (with projection) and GRU stacks exact to torch's
modules, ELMo's clipped single-bias LSTMP cell and character CNN, diagonal linear
recurrences (LRU), highway layers, sequence masks and per-step application."""

from __future__ import annotations

from dlc.plugin_api import BlockType, OpDef, hookimpl

from . import blocks, char_cnn, linear_recurrence, lstmp, ops, sequence


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [*ops.OPS, *lstmp.OPS, *linear_recurrence.OPS]


@hookimpl
def dlc_block_types() -> list[BlockType]:
    return [*blocks.BLOCKS, *lstmp.BLOCKS, *sequence.BLOCKS, *char_cnn.BLOCKS, *linear_recurrence.BLOCKS]

"""dlc's own plugin: the generic passes, the ONNX and PyTorch emit targets, and the
`scan` loop op (its body is an IR graph, so it belongs to no family).

They register through the same hooks as every block family, under the plugin name `dlc`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlc.emit.targets import EmitTarget
from dlc.hookspecs import hookimpl
from dlc.ir.loops import ScanAttrs, infer_scan, scan_samples
from dlc.ir.ops import OpDef, OpGroup
from dlc.passes.constant_folding import ConstantFolding
from dlc.passes.dead_code import DeadCodeElimination
from dlc.passes.identity_removal import IdentityRemoval
from dlc.passes.manager import PHASE_CLEANUP, PHASE_FINAL, PassInfo

if TYPE_CHECKING:
    from dlc.emit.onnx.builder import OnnxBuilder
    from dlc.emit.torch.writer import TorchExpr, TorchWriter
    from dlc.ir.node import Node


@hookimpl
def dlc_passes() -> list[PassInfo]:
    return [
        # Drop identities and inference dropout first: fusion patterns then see real producers.
        PassInfo(
            "identity-removal",
            IdentityRemoval,
            "Remove identity and inference-mode dropout.",
            1,
            PHASE_CLEANUP,
        ),
        # Evaluate constant-only subgraphs once, at compile time.
        PassInfo(
            "constant-folding",
            ConstantFolding,
            "Evaluate ops whose inputs are all constants.",
            1,
            PHASE_CLEANUP,
        ),
        # Last: sweep away whatever the rewrites above left unused.
        PassInfo(
            "dead-code-elimination",
            DeadCodeElimination,
            "Remove unused nodes and parameters.",
            1,
            PHASE_FINAL,
        ),
    ]


@hookimpl
def dlc_emit_targets() -> list[EmitTarget]:
    from dlc.emit.onnx.target import ONNX_TARGET
    from dlc.emit.torch.target import TORCH_TARGET

    return [ONNX_TARGET, TORCH_TARGET]


def _scan_to_onnx(builder: OnnxBuilder, node: Node) -> None:
    # Imported here, on first emission: onnx costs a tenth of a second that
    # `dlc validate` and `dlc summary` never need.
    from dlc.emit.onnx.loops import scan_to_onnx

    scan_to_onnx(builder, node)


def _scan_to_torch(writer: TorchWriter, node: Node) -> TorchExpr | str:
    from dlc.emit.torch.loops import scan_to_torch

    return scan_to_torch(writer, node)


@hookimpl
def dlc_ops() -> list[OpDef]:
    return [
        OpDef(
            "scan",
            infer_scan,
            _scan_to_onnx,
            _scan_to_torch,
            scan_samples,
            ScanAttrs,
            OpGroup.OTHER,
            doc="A loop: its body graph runs once per step, carrying state (ONNX Scan/Loop).",
        )
    ]

"""Square-matrix ops that invertible layers need: `matrix_inverse` and `log_abs_det`.

ONNX has `Det` but no matrix inverse, so `matrix_inverse` is lowered in plain ONNX as the
adjugate over the determinant, A^-1 = adj(A) / det(A) with adj(A)[j, i] = (-1)^(i+j)
det(minor_ij): the C^2 minors are gathered into one [C, C, C-1, C-1] tensor and `Det`
(batched) takes them all at once; one Newton step X <- X (2I - A X) then removes most of
the float32 rounding. It costs O(C^5), but its input is a weight (Glow's 1x1 convolution),
so ONNX Runtime folds it once when the session starts. Torch uses torch.linalg.inv.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlc.lazy_imports import numpy as np
from dlc.plugin_api import (
    Node,
    OnnxBuilder,
    OpDef,
    OpGroup,
    OpSample,
    TensorType,
    is_static,
    require,
)


def _square(inputs: Sequence[TensorType | None], what: str) -> TensorType:
    (matrix,) = inputs
    assert matrix is not None
    static = matrix.rank == 2 and all(is_static(d) for d in matrix.shape)
    require(static, f"{what} takes a static [C, C] matrix, got {matrix}")
    require(matrix.shape[0] == matrix.shape[1], f"{what} takes a square matrix, got {matrix}")
    return matrix


def _inverse_infer(attrs: object, inputs: Sequence[TensorType | None]) -> TensorType:
    return _square(inputs, "matrix_inverse")


def _log_abs_det_infer(attrs: object, inputs: Sequence[TensorType | None]) -> TensorType:
    return _square(inputs, "log_abs_det").with_shape(())


def _inverse_onnx(b: OnnxBuilder, node: Node) -> None:
    matrix = b.name(node.inputs[0])
    size = int(node.inputs[0].type.shape[0])
    (output,) = b.outputs(node)
    if size == 1:
        b.op("Reciprocal", [matrix], [output])
        return
    others = np.array([[r for r in range(size) if r != i] for i in range(size)], dtype=np.int64)
    index = b.constant(others, "minor_index")
    rows = b.op("Gather", [matrix, index], axis=0)[0]  # [C, C-1, C]: rows without row i
    both = b.op("Gather", [rows, index], axis=2)[0]  # [C, C-1, C, C-1]: and columns without j
    minors = b.op("Transpose", [both], perm=[0, 2, 1, 3])[0]  # [i, j, C-1, C-1]
    signs = (-1.0) ** np.add.outer(np.arange(size), np.arange(size))
    cofactors = b.op("Mul", [b.op("Det", [minors])[0], b.constant(signs.astype(np.float32), "signs")])[0]
    adjugate = b.op("Transpose", [cofactors], perm=[1, 0])[0]
    first = b.op("Div", [adjugate, b.op("Det", [matrix])[0]])[0]
    # One Newton step: X (2I - A X).
    two_identity = b.constant(2.0 * np.eye(size, dtype=np.float32), "two_identity")
    residual = b.op("Sub", [two_identity, b.op("MatMul", [matrix, first])[0]])[0]
    b.op("MatMul", [first, residual], [output])


def _log_abs_det_onnx(b: OnnxBuilder, node: Node) -> None:
    determinant = b.op("Det", [b.name(node.inputs[0])])[0]
    b.op("Log", [b.op("Abs", [determinant])[0]], b.outputs(node))


def _samples() -> list[OpSample]:
    rng = np.random.default_rng(15)
    matrices = [rng.standard_normal((size, size)).astype(np.float32) for size in (1, 3, 6)]
    return [
        OpSample(
            (m + 2.0 * np.eye(len(m), dtype=np.float32),), name=f"{len(m)}x{len(m)}", symbolic_batch=False
        )
        for m in matrices
    ]


OPS = [
    OpDef(
        "matrix_inverse",
        _inverse_infer,
        _inverse_onnx,
        lambda t, n: f"torch.linalg.inv({t.var(n.inputs[0])})",
        _samples,
        group=OpGroup.OTHER,
        doc="The inverse of a square matrix (a weight: ONNX Runtime folds it at session start).",
    ),
    OpDef(
        "log_abs_det",
        _log_abs_det_infer,
        _log_abs_det_onnx,
        lambda t, n: f"torch.linalg.slogdet({t.var(n.inputs[0])}).logabsdet",
        _samples,
        group=OpGroup.OTHER,
        doc="log |det A| of a square matrix.",
    ),
]

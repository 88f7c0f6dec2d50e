"""The empirical neural tangent kernel of a compiled spec.

For a network `f(x; theta)` with outputs `f_a`, the NTK is the Gram matrix of the parameter
gradients (Jacot et al. 2018; the course's `k(x, xi) = <grad f(x), grad f(xi)>`):

    K[i, j, a, b] = sum_p  d f_a(x_i) / d theta_p  *  d f_b(x'_j) / d theta_p   =  (J J'^T)[ia, jb]

`mode` picks what is kept: `full` K[i, j, a, b]; `per-output` the diagonal K[i, j, a, a]
(one kernel per output value, [N1, N2, O]); `trace` the sum over a of K[i, j, a, a], [N1, N2].

Two ways to compute it with `torch.func`, both in blocks of `chunk` samples so that at most
two blocks' Jacobians are ever held (`chunk * O * P` numbers each, not the full `N * O * P`):

- `jacobian` (default): vector-Jacobian products (`vjp`, vmapped over the output basis)
  give the Jacobian rows of a block of x and of a block of x'; K's block is their product,
  accumulated parameter by parameter. On a symmetric Gram matrix (x' = x) only the blocks on
  and above the diagonal are computed.
- `products`: the NTK-vector products of neural-tangents: `vjp` on a block of x' gives the
  rows `J'^T e`, a Jacobian-vector product (`jvp`) on the block of x maps each to `J J'^T e`,
  never contracting over parameters explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal

from dlc.analysis import AnalysisError
from dlc.analysis.choices import NTK_METHODS, NTK_MODES
from dlc.analysis.model_function import ModelFunction, flat_output
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    import torch

    from dlc.api import CompiledModel

Mode = Literal["full", "per-output", "trace"]
Method = Literal["jacobian", "products"]
MODES, METHODS = NTK_MODES, NTK_METHODS
# Default memory for one block's Jacobian rows (both sides together) when no chunk is given.
DEFAULT_BLOCK_BYTES = 256 * 2**20


def empirical_ntk(
    function: ModelFunction,
    x1: tuple[torch.Tensor, ...],
    x2: tuple[torch.Tensor, ...] | None = None,
    *,
    mode: Mode = "full",
    chunk: int | None = None,
    method: Method = "jacobian",
) -> np.ndarray:
    """The NTK between the samples of `x1` and of `x2` (default `x2 = x1`), in float64.
    `chunk` is the number of samples per block (default: as many as fit in
    `DEFAULT_BLOCK_BYTES`)."""
    import torch

    if mode not in MODES:
        raise AnalysisError(f"unknown NTK mode '{mode}'", hint=f"one of {', '.join(MODES)}")
    if method not in METHODS:
        raise AnalysisError(f"unknown NTK method '{method}'", hint=f"one of {', '.join(METHODS)}")
    if chunk is not None and chunk < 1:
        raise AnalysisError(f"the chunk size must be a positive number of samples, got {chunk}")
    if not function.parameters:
        raise AnalysisError("the model has no trainable parameters, so its tangent kernel is zero")
    symmetric = x2 is None
    x2 = x1 if x2 is None else x2
    n1, n2 = x1[0].shape[0], x2[0].shape[0]
    with torch.no_grad():
        outputs = flat_output(function, function.parameters, tuple(x[:1] for x in x1)).shape[1]
    if chunk is None:
        row_bytes = outputs * function.parameter_count * 4
        chunk = max(1, DEFAULT_BLOCK_BYTES // (2 * row_bytes))
    shape = {"full": (n1, n2, outputs, outputs), "per-output": (n1, n2, outputs), "trace": (n1, n2)}[mode]
    kernel = np.zeros(shape)
    # Attention through its composite (math) form: the fused CPU kernels have neither a
    # forward-mode derivative (jvp) nor a vmap batching rule for their backward.
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        _fill(kernel, function, x1, x2, chunk, mode, method, symmetric and method == "jacobian")
    return kernel


def model_ntk(
    model: CompiledModel,
    x1: np.ndarray | Mapping[str, np.ndarray],
    x2: np.ndarray | Mapping[str, np.ndarray] | None = None,
    *,
    output: str | None = None,
    mode: Mode = "trace",
    chunk: int | None = None,
) -> np.ndarray:
    """`CompiledModel.ntk`: the kernel of `model`'s torch module over numpy inputs."""
    from dlc.analysis.model_function import as_input_tensors, model_function

    function = model_function(model, output)
    first = as_input_tensors(function, x1, "x1")
    second = None if x2 is None else as_input_tensors(function, x2, "x2")
    return empirical_ntk(function, first, second, mode=mode, chunk=chunk)


def _fill(
    kernel: np.ndarray,
    function: ModelFunction,
    x1: tuple[torch.Tensor, ...],
    x2: tuple[torch.Tensor, ...],
    chunk: int,
    mode: str,
    method: str,
    mirror: bool,
) -> None:
    """Write `kernel` block by block; with `mirror` (a symmetric Gram matrix), the blocks
    below the diagonal are the transposes of those above it. The `jacobian` method keeps the
    rows of the current block of x1 while it runs over the blocks of x2."""
    for start1, x1_block in _blocks(x1, chunk):
        rows1 = jacobian_rows(function, x1_block) if method == "jacobian" else None
        for start2, x2_block in _blocks(x2, chunk):
            if mirror and start2 < start1:
                continue
            c1, c2 = x1_block[0].shape[0], x2_block[0].shape[0]
            if rows1 is not None:
                rows2 = rows1 if mirror and start2 == start1 else jacobian_rows(function, x2_block)
                full = _contract(rows1, rows2, c1, c2)  # [c1, O, c2, O]
            else:
                full = _products_block(function, x1_block, x2_block)
            part = _reduce(full.permute(0, 2, 1, 3), mode).double().numpy()
            rows, columns = slice(start1, start1 + c1), slice(start2, start2 + c2)
            kernel[rows, columns] = part
            if mirror and start2 > start1:
                kernel[columns, rows] = (
                    np.transpose(part, (1, 0, 3, 2)) if mode == "full" else np.swapaxes(part, 0, 1)
                )


def _blocks(inputs: tuple[torch.Tensor, ...], chunk: int) -> Iterator[tuple[int, tuple[torch.Tensor, ...]]]:
    for start in range(0, inputs[0].shape[0], chunk):
        yield start, tuple(x[start : start + chunk] for x in inputs)


def _reduce(full: torch.Tensor, mode: str) -> torch.Tensor:
    """[c1, c2, O, O] -> what `mode` keeps."""
    if mode == "full":
        return full
    diagonal = full.diagonal(dim1=2, dim2=3)  # [c1, c2, O]
    return diagonal if mode == "per-output" else diagonal.sum(-1)


def jacobian_rows(function: ModelFunction, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """d f(inputs) / d theta, per parameter as [samples * outputs, *parameter shape], by
    vector-Jacobian products vmapped over the basis of the flattened outputs."""
    import torch
    from torch.func import vjp, vmap

    def flat(parameters: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return flat_output(function, parameters, inputs).reshape(-1)

    values, pullback = vjp(flat, function.parameters)
    basis = torch.eye(values.numel(), dtype=values.dtype)
    (rows,) = vmap(pullback)(basis)
    return rows


def _contract(
    rows1: Mapping[str, torch.Tensor], rows2: Mapping[str, torch.Tensor], c1: int, c2: int
) -> torch.Tensor:
    """K's block [c1, O, c2, O] as J1 J2^T: a float32 product per parameter tensor, summed
    over the tensors in float64."""
    total: torch.Tensor | None = None
    for name, left in rows1.items():
        right = rows2[name]
        product = (left.reshape(left.shape[0], -1) @ right.reshape(right.shape[0], -1).T).double()
        total = product if total is None else total + product
    assert total is not None
    return total.reshape(c1, -1, c2, total.shape[1] // c2)


def _products_block(
    function: ModelFunction, x1: tuple[torch.Tensor, ...], x2: tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """K's block [c1, O, c2, O]: `J1 (J2^T e)` for each output basis vector e of block 2, a
    vjp then a jvp, vmapped over the basis."""
    from torch.func import jvp, vmap

    rows2 = jacobian_rows(function, x2)  # J2^T e for every e: [c2 * O, *p] per parameter

    def pushforward(tangent: Mapping[str, object]) -> torch.Tensor:
        _, out = jvp(lambda p: flat_output(function, p, x1).reshape(-1), (function.parameters,), (tangent,))
        return out

    columns = vmap(pushforward)(rows2)  # [c2 * O, c1 * O]
    c1, c2 = x1[0].shape[0], x2[0].shape[0]
    return columns.T.reshape(c1, -1, c2, columns.shape[0] // c2)

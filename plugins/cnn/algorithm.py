"""Convolution algorithm selection: direct or FFT, per conv node, by predicted cost.

For every 1-D and 2-D `conv` with static spatial dims, the cost model (cost.py) predicts
the time of the direct convolution and of the best FFT plan, replaying the ops the FFT
emission would run (fft_onnx.py): DFT products, twiddles, the spectral channel product
(whose weight spectrum is read from memory at every call), layout copies. The cheaper one
wins; `--conv-algo direct|fft` forces a choice for the whole graph. Costs are predicted at
batch 1 unless the pass option `batch` says otherwise.

1-D plans are overlap-save frames of M = M1 * M2 samples (M1, M2 the four-step factors),
tried for every power of two (and three times one) from twice the kernel's reach up to the
whole padded signal. 2-D plans transform the whole padded image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlc.plugin_api import Graph, Node, PassContext, PassResult, is_static

from .cost import ConvShape, CostModel
from .fft_conv import FFTConvAttrs


@dataclass(frozen=True)
class ConvProblem:
    """One convolution with static spatial dims, as the cost model sees it."""

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, ...]
    spatial: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.kernel)

    @property
    def reach(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(s + self.padding[i] + self.padding[i + self.rank] for i, s in enumerate(self.spatial))

    @property
    def full(self) -> tuple[int, ...]:
        """Output size at stride 1."""
        return tuple(p - r + 1 for p, r in zip(self.padded, self.reach, strict=True))

    @property
    def output(self) -> tuple[int, ...]:
        return tuple((f - 1) // s + 1 for f, s in zip(self.full, self.stride, strict=True))

    @property
    def depthwise(self) -> bool:
        return self.groups == self.in_channels == self.out_channels

    def conv_shape(self) -> ConvShape:
        return ConvShape(
            self.batch,
            self.in_channels,
            self.out_channels,
            self.kernel,
            self.output,
            self.spatial,
            self.groups,
        )

    @staticmethod
    def from_node(node: Node, batch: int = 1) -> ConvProblem | str:
        """The problem, or the reason the node cannot take the FFT path."""
        x, weight = node.inputs[0], node.inputs[1]
        rank = weight.type.rank - 2
        if rank not in (1, 2):
            return f"{rank}-D convolutions have no FFT path"
        spatial = x.type.shape[2:]
        if not all(is_static(d) for d in spatial):
            return f"the spatial dims {[str(d) for d in spatial]} are symbolic"
        a = node.attrs
        return ConvProblem(
            batch=batch,
            in_channels=int(x.type.shape[1]),
            out_channels=int(weight.type.shape[0]),
            groups=a.groups,
            kernel=tuple(int(k) for k in weight.type.shape[2:]),
            spatial=tuple(int(s) for s in spatial),
            stride=a.stride,
            padding=a.padding,
            dilation=a.dilation,
        )


def direct_seconds(problem: ConvProblem, model: CostModel) -> float:
    return model.direct_conv(problem.conv_shape())


def _product_seconds(problem: ConvProblem, model: CostModel, frequencies: int, rows: int) -> float:
    """The spectral channel product: per frequency, [rows x 2 Cg] @ [2 Cg x Og] per group
    (rows = stacked real/imaginary batch-frames), weight spectrum read once per call."""
    p = problem
    if p.depthwise:
        return model.elementwise(frequencies * rows * p.in_channels, ops=8)
    group_in, group_out = p.in_channels // p.groups, p.out_channels // p.groups
    weight_bytes = 4 * frequencies * 2 * group_in * p.out_channels
    layout = model.elementwise(frequencies * rows * p.in_channels, ops=5 if p.groups == 1 else 7)
    return layout + model.matmul(
        rows, 2 * group_in, group_out, batch=frequencies * p.groups, weight_bytes=weight_bytes
    )


def fft1d_seconds(problem: ConvProblem, m1: int, m2: int, model: CostModel) -> float:
    p = problem
    m = m1 * m2
    block = m - p.reach[0] + 1
    frames = math.ceil(p.full[0] / block)
    n, c, o = p.batch, p.in_channels, p.out_channels
    seconds = model.elementwise(n * (p.padded[0] + m * frames) * c, ops=3)  # transpose, pad, gather
    seconds += model.matmul(2 * m1, m1, m2 * frames * c, batch=n)  # M1-point DFTs
    seconds += model.elementwise(n * m * frames * c, ops=9)  # twiddles, halves, concat
    seconds += model.matmul(2 * m2, 2 * m2, frames * c, batch=n * m1)  # M2-point DFTs
    seconds += _product_seconds(p, model, m, 2 * n * frames)
    seconds += model.elementwise(n * m * frames * o, ops=11)  # layout, twiddles, halves, concat
    seconds += model.matmul(2 * m2, 2 * m2, frames * o, batch=n * m1)
    seconds += model.matmul(m1, 2 * m1, m2 * frames * o, batch=n)
    seconds += model.elementwise(n * block * frames * o, ops=3)  # keep, transpose, stride
    return seconds


def fft2d_seconds(problem: ConvProblem, ph: int, pw: int, model: CostModel) -> float:
    p = problem
    n, c, o = p.batch, p.in_channels, p.out_channels
    h, w = p.spatial
    out_h, out_w = p.output
    half = pw // 2 + 1
    frequencies = ph * half
    seconds = model.matmul(n * c * h, w, 2 * half)  # real DFT along W
    seconds += model.matmul(2 * ph, h, 2 * half, batch=n * c)  # complex DFT along H
    seconds += model.elementwise(n * c * frequencies, ops=6)
    seconds += _product_seconds(p, model, frequencies, 2 * n)
    seconds += model.matmul(2 * out_h, ph, 2 * half, batch=n * o)  # inverse along H, kept rows
    seconds += model.elementwise(n * o * out_h * half, ops=7)
    seconds += model.matmul(n * o * out_h, 2 * half, out_w)  # inverse along W, kept columns
    return seconds


def _frame_sizes(problem: ConvProblem) -> list[int]:
    reach, padded = problem.reach[0], problem.padded[0]
    sizes = set()
    size = 8
    while size < 4 * padded:
        for candidate in (size, 3 * size // 2):
            if candidate >= 2 * reach or candidate >= padded:
                sizes.add(candidate)
        size *= 2
    return sorted(s for s in sizes if s >= reach + 1)


def _factors(size: int) -> tuple[int, int]:
    """Four-step factors M1 * M2 = size, as balanced as the size allows (M1 a power of two)."""
    m1 = 1 << max(0, (int(math.log2(size)) // 2))
    while size % m1:
        m1 //= 2
    return m1, size // m1


# The kernel spectrum lives in memory at run time (real and imaginary float32 parts for
# every frequency, input and output channel); plans that need more are never chosen.
MAX_SPECTRUM_BYTES = 1 << 29


def spectrum_bytes(problem: ConvProblem, frequencies: int) -> int:
    return 8 * frequencies * (problem.in_channels // problem.groups) * problem.out_channels


def best_fft_plan(problem: ConvProblem, model: CostModel) -> tuple[dict, float] | None:
    """The cheapest FFT plan's attributes and predicted seconds; None if none fits in memory."""
    if problem.rank == 2:
        ph, pw = problem.padded
        if spectrum_bytes(problem, ph * (pw // 2 + 1)) > MAX_SPECTRUM_BYTES:
            return None
        return {"transform": (ph, pw), "block": 0}, fft2d_seconds(problem, ph, pw, model)
    best: tuple[dict, float] | None = None
    for size in _frame_sizes(problem):
        if spectrum_bytes(problem, size) > MAX_SPECTRUM_BYTES:
            continue
        m1, m2 = _factors(size)
        seconds = fft1d_seconds(problem, m1, m2, model)
        if best is None or seconds < best[1]:
            best = ({"transform": (m1, m2), "block": size - problem.reach[0] + 1}, seconds)
    return best


class ConvAlgorithmSelection:
    """Replace `conv` nodes with `fft_conv` where the FFT path is predicted faster."""

    name = "select-conv-algorithm"

    def __init__(self, context: PassContext) -> None:
        self.choice = str(context.options.get("conv_algo", "auto"))
        if self.choice not in ("auto", "direct", "fft"):
            from dlc.plugin_api import DlcError

            raise DlcError(f"--conv-algo takes auto, direct or fft, not '{self.choice}'")
        self.batch = int(context.options.get("batch", 1))
        self.model = CostModel.load()
        self._notes: list[str] = []

    def run(self, graph: Graph) -> PassResult:
        modified = False
        for node in [n for n in graph.toposort() if n.op == "conv"]:
            problem = ConvProblem.from_node(node, self.batch)
            if isinstance(problem, str):
                self._notes.append(f"{node.name}: direct ({problem})")
                continue
            direct = direct_seconds(problem, self.model)
            best = best_fft_plan(problem, self.model)
            if best is None:
                self._notes.append(
                    f"{node.name}: direct (an FFT kernel spectrum would exceed {MAX_SPECTRUM_BYTES >> 20} MB)"
                )
                continue
            plan, fft = best
            use_fft = self.choice == "fft" or (self.choice == "auto" and fft < direct)
            verdict = "fft" if use_fft else "direct"
            why = "forced" if self.choice != "auto" else "cheaper"
            self._notes.append(
                f"{node.name}: {verdict} ({why}; predicted direct {direct * 1e6:.0f} us, "
                f"fft {fft * 1e6:.0f} us with transform {list(plan['transform'])})"
            )
            if not use_fft:
                continue
            attrs = FFTConvAttrs(**node.attrs.model_dump(), **plan, predicted_us=(direct * 1e6, fft * 1e6))
            graph.replace_node(node, node.replace(op="fft_conv", attrs=attrs))
            modified = True
        return PassResult(graph, modified)

    def notes(self) -> list[str]:
        return self._notes

"""CNN blocks against torch's own modules (or a direct reference) on the same weights.

Op parity (tests/ops) already checks every op's ONNX lowering against its torch
lowering; these tests check what the blocks resolve: padding modes, ceil mode, the
composed min and softmax pooling, crops, projections. Each compiles a one-layer spec,
runs it in ONNX Runtime and compares with torch (float32, tolerance 1e-5 relative to
the output's scale)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlc
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error


def compile_layers(shape: list, layers: str, opt_level: int = 0) -> dlc.CompiledModel:
    text = f"dlc: 1\nname: t\ninputs:\n  x: {{shape: {shape}}}\nlayers:\n{textwrap.indent(textwrap.dedent(layers), '  ')}"
    return dlc.compile(load_spec("t.yaml", text=text), opt_level=opt_level)


def run(model: dlc.CompiledModel, x: np.ndarray) -> np.ndarray:
    return next(iter(model.run({"x": x}, provider="cpu").values()))


def with_weights(module: nn.Module, model: dlc.CompiledModel, prefix: str) -> nn.Module:
    state = {k.removeprefix(prefix): torch.from_numpy(v) for k, v in model.weights().items()}
    module.load_state_dict(state)
    return module.eval()


def assert_close(expected: torch.Tensor | np.ndarray, actual: np.ndarray) -> None:
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert expected.shape == actual.shape
    assert max_relative_error(expected, actual) <= 1e-5


def image(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    ("options", "reference"),
    [
        ("{out: 5, kernel: 4, dilation: 2, padding: same}", nn.Conv2d(3, 5, 4, dilation=2, padding="same")),
        (
            "{out: 6, kernel: 3, padding: 1, padding_mode: reflect}",
            nn.Conv2d(3, 6, 3, padding=1, padding_mode="reflect"),
        ),
        (
            "{out: 6, kernel: 3, padding: 2, padding_mode: circular}",
            nn.Conv2d(3, 6, 3, padding=2, padding_mode="circular"),
        ),
        (
            "{out: 6, kernel: [3, 1], stride: [2, 1], groups: depthwise, bias: false}",
            nn.Conv2d(3, 6, (3, 1), (2, 1), groups=3, bias=False),
        ),
        (
            "{out: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1}",
            nn.ConvTranspose2d(3, 4, 3, 2, 1, output_padding=1),
        ),
    ],
    ids=["same-even-dilated", "reflect", "circular", "depthwise", "transpose-output-padding"],
)
def test_conv_blocks_match_torch_modules(options: str, reference: nn.Module) -> None:
    block = "conv_transpose2d" if isinstance(reference, nn.ConvTranspose2d) else "conv2d"
    model = compile_layers(["N", 3, 9, 8], f"- {block}: {options}\n  id: conv\n")
    x = image(2, 3, 9, 8)
    assert_close(with_weights(reference, model, "conv.")(torch.from_numpy(x)), run(model, x))


def test_causal_conv1d_sees_no_future_and_matches_a_cropped_torch_conv() -> None:
    model = compile_layers(
        ["N", 4, "T"], "- conv1d: {out: 3, kernel: 3, dilation: 4, padding: causal}\n  id: conv\n"
    )
    reference = with_weights(nn.Conv1d(4, 3, 3, dilation=4, padding=8), model, "conv.")
    x = image(2, 4, 20)
    y = run(model, x)
    assert_close(reference(torch.from_numpy(x))[..., :20], y)
    later = x.copy()
    later[..., 12:] += 1.0  # changing the future leaves the past unchanged
    assert np.array_equal(run(model, later)[..., :12], y[..., :12])


@pytest.mark.parametrize("size", [9, 10])
def test_same_padding_with_stride_keeps_ceil_of_size_over_stride(size: int) -> None:
    model = compile_layers(
        ["N", 2, size, size], "- conv2d: {out: 3, kernel: 3, stride: 2, padding: same}\n  id: conv\n"
    )
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)  # TensorFlow's SAME: extra padding at the end
    reference = with_weights(nn.Conv2d(2, 3, 3, stride=2), model, "conv.")
    x = image(1, 2, size, size)
    padded = F.pad(torch.from_numpy(x), (total // 2, total - total // 2) * 2)
    assert_close(reference(padded), run(model, x))
    assert run(model, x).shape[-1] == -(-size // 2)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [(112, 3, 2, 0), (14, 2, 2, 0), (7, 3, 2, 1), (6, 3, 3, 1), (5, 2, 2, 1), (10, 4, 3, 0)],
)
def test_max_pool_ceil_mode_matches_torch(size: int, kernel: int, stride: int, padding: int) -> None:
    options = f"{{kernel: {kernel}, stride: {stride}, padding: {padding}, ceil_mode: true}}"
    model = compile_layers(["N", 2, size, size], f"- max_pool2d: {options}\n")
    x = image(1, 2, size, size)
    expected = nn.MaxPool2d(kernel, stride, padding, ceil_mode=True)(torch.from_numpy(x))
    assert_close(expected, run(model, x))


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_matches_torch(count_include_pad: bool) -> None:
    options = f"{{kernel: 3, stride: 2, padding: 1, count_include_pad: {str(count_include_pad).lower()}}}"
    model = compile_layers(["N", 2, 9, 8], f"- avg_pool2d: {options}\n")
    x = image(2, 2, 9, 8)
    expected = nn.AvgPool2d(3, 2, 1, count_include_pad=count_include_pad)(torch.from_numpy(x))
    assert_close(expected, run(model, x))


def test_min_pool_is_the_minimum_of_each_window_ignoring_padding() -> None:
    model = compile_layers(["N", 2, 7, 7], "- min_pool2d: {kernel: 3, stride: 2, padding: 1}\n")
    x = np.abs(image(1, 2, 7, 7)) + 1.0  # positive: zero padding would show up as minima
    expected = -F.max_pool2d(-torch.from_numpy(x), 3, 2, 1)
    assert_close(expected, run(model, x))
    assert run(model, x).min() >= 1.0


def softmax_pool_reference(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """sum(softmax(w) * w) over every window w, padded positions excluded, via F.unfold."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, value=float("-inf"))
    windows = F.unfold(padded, kernel, stride=stride).reshape(n, c, kernel * kernel, -1)
    weights = torch.softmax(windows, dim=2)
    out = (weights * torch.nan_to_num(windows, neginf=0.0)).sum(dim=2)
    size = (h + 2 * padding - kernel) // stride + 1
    return out.reshape(n, c, size, (w + 2 * padding - kernel) // stride + 1)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_softmax_pool_matches_a_softmax_weighted_average_per_window(
    kernel: int, stride: int, padding: int
) -> None:
    model = compile_layers(
        ["N", 3, 8, 7], f"- softmax_pool2d: {{kernel: {kernel}, stride: {stride}, padding: {padding}}}\n"
    )
    x = image(2, 3, 8, 7) * 4
    assert_close(softmax_pool_reference(torch.from_numpy(x), kernel, stride, padding), run(model, x))


def test_softmax_pool_is_stable_and_lies_between_mean_and_max() -> None:
    model = compile_layers(["N", 1, 4, 4], "- softmax_pool2d: 2\n")
    x = image(1, 1, 4, 4) * 1000  # exp(1000) overflows unless each window is normalized by its max
    y = run(model, x)
    assert np.isfinite(y).all()
    windows = torch.from_numpy(x)
    assert (y <= F.max_pool2d(windows, 2).numpy() + 1e-3).all()
    assert (y >= F.avg_pool2d(windows, 2).numpy() - 1e-3).all()


def test_center_crop_takes_the_middle_with_the_odd_pixel_at_the_end() -> None:
    model = compile_layers(
        ["N", 2, 9, 8],
        "- conv2d: {out: 2, kernel: 3}\n  id: small\n- center_crop:\n  in: [x, small]\n",
    )
    x = image(1, 2, 9, 8)
    outputs = model.run({"x": x}, provider="cpu")
    assert_close(x[:, :, 1:8, 1:7], outputs["output"])


def test_center_crop_to_a_size() -> None:
    model = compile_layers(["N", 2, 9, 8], "- center_crop: [4, 5]\n")
    x = image(1, 2, 9, 8)
    assert_close(x[:, :, 2:6, 1:6], run(model, x))


def test_upsample_and_pad_match_torch() -> None:
    model = compile_layers(
        ["N", 2, 5, 4],
        "- upsample: {scale: [2, 3], mode: bilinear, align_corners: true}\n- pad: {padding: [[1, 1], [0, 2]], mode: reflect}\n",
    )
    x = torch.from_numpy(image(2, 2, 5, 4))
    upsampled = nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=True)(x)
    assert_close(F.pad(upsampled, (0, 2, 1, 1), mode="reflect"), run(model, x.numpy()))


def test_local_response_norm_matches_torch() -> None:
    model = compile_layers(
        ["N", 8, 5, 5], "- local_response_norm: {size: 5, alpha: 1.0e-3, beta: 0.75, k: 2.0}\n"
    )
    x = image(2, 8, 5, 5) * 5
    expected = nn.LocalResponseNorm(5, alpha=1e-3, beta=0.75, k=2.0)(torch.from_numpy(x))
    assert_close(expected, run(model, x))


@pytest.mark.parametrize("size", [4, 6, 16, 40])
def test_local_response_norm_even_size_wider_than_channels_matches_torch(size: int) -> None:
    """Even sizes are spelled out as slices of the padded squares; windows that miss every
    channel are skipped (a size of 2^31 must not emit 2^31 slices), the values unchanged."""
    model = compile_layers(["N", 3, 4, 4], f"- local_response_norm: {{size: {size}, alpha: 0.5, k: 1.5}}\n")
    x = image(2, 3, 4, 4) * 3
    expected = nn.LocalResponseNorm(size, alpha=0.5, beta=0.75, k=1.5)(torch.from_numpy(x))
    assert_close(expected, run(model, x))


def test_locally_connected_has_a_kernel_per_position() -> None:
    model = compile_layers(
        ["N", 2, 5, 6], "- locally_connected2d: {out: 3, kernel: [2, 3], stride: [1, 2]}\n  id: lc\n"
    )
    weights = model.weights()
    kernel, bias = weights["lc.weight"], weights["lc.bias"]
    assert kernel.shape == (4, 2, 3, 2, 2, 3)  # [H', W', K, C, p, q]
    x = image(2, 2, 5, 6)
    expected = np.zeros((2, 3, 4, 2), dtype=np.float64)
    for i in range(4):
        for j in range(2):
            window = x[:, :, i : i + 2, 2 * j : 2 * j + 3]
            expected[:, :, i, j] = np.einsum("ncpq,kcpq->nk", window, kernel[i, j]) + bias[:, i, j]
    assert_close(expected.astype(np.float32), run(model, x))


class ProjectedResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2d_0 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(4, 8, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d_0(x) + self.shortcut(x)


def test_residual_auto_projects_with_a_strided_1x1_conv() -> None:
    model = compile_layers(
        ["N", 4, 8, 8], "- residual:\n    - conv2d: {out: 8, kernel: 3, stride: 2, padding: 1}\n"
    )
    assert model.weights()["residual_0.shortcut.weight"].shape == (8, 4, 1, 1)
    x = image(2, 4, 8, 8)
    reference = with_weights(ProjectedResidual(), model, "residual_0.")
    assert_close(reference(torch.from_numpy(x)), run(model, x))


PARAMETER_COMPARISON = """
- conv2d: {out: 4, kernel: 3}
  id: conv
  in: x
- locally_connected2d: {out: 4, kernel: 3}
  id: locally_connected
  in: x
- flatten:
  in: x
- linear: 144
  id: fully_connected
"""


def test_conv_locally_connected_and_fully_connected_parameter_counts() -> None:
    """The course's comparison for an m x n x c input, K kernels of p x q (valid, stride 1):
    conv K(pqc + 1); locally connected (m-p+1)(n-q+1) K (pqc + 1); fully connected with as
    many outputs (m-p+1)(n-q+1) K (mnc + 1)."""
    m, n, c, p, q, k = 8, 8, 3, 3, 3, 4
    outputs = (m - p + 1) * (n - q + 1) * k
    summary = compile_layers(["N", c, m, n], PARAMETER_COMPARISON).summary()
    params = {layer.name: layer.params for layer in summary.layers}
    assert params["conv"] == k * (p * q * c + 1) == 112
    assert params["locally_connected"] == (m - p + 1) * (n - q + 1) * k * (p * q * c + 1) == 4_032
    assert params["fully_connected"] == outputs * (m * n * c + 1) == 27_792


@pytest.mark.parametrize(
    ("layer", "bound"),
    [
        ("conv2d: {out: 4, kernel: 3, groups: 2}", 1 / np.sqrt(4 * 9)),  # C_in / groups * kernel
        ("conv_transpose2d: {out: 4, kernel: 3, groups: 2}", 1 / np.sqrt(2 * 9)),  # C_out / groups * kernel
    ],
)
def test_initialization_is_torchs_fan_in_uniform(layer: str, bound: float) -> None:
    """torch's Conv and ConvTranspose default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight
    and bias, fan_in from dim 1 of the weight times the kernel size."""
    weights = compile_layers(["N", 8, 6, 6], f"- {layer}\n  id: conv\n").weights()
    for name in ("conv.weight", "conv.bias"):
        values = np.abs(weights[name])
        assert values.max() <= bound and (name == "conv.bias" or values.max() > 0.9 * bound)

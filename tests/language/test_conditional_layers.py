"""`if:` on layers (issue 10 item 1): a false condition skips the layer, whose name then
stands for its first input; it creates no parameters and no summary row; `repeat: 0` is the
identity. Templates built on it (MobileNetV2's inverted residual, grouped-query attention
with multi-head attention as its kv_heads == heads case) match torch references written
here, with the same parameter names. Tolerances: 1e-5 relative to the output scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import assert_parity, compile_text, compile_with_weights, random_state, write_spec

CONDITIONAL = """
dlc: 1
name: conditional
inputs:
  x: {shape: [N, 8]}
params:
  expand: 1
  depth: 0
blocks:
  block:
    params: {t: int, out: int}
    body:
      - linear: "${out * t}"
        if: "${t != 1}"
      - relu
      - linear: "${out}"
    residual: {shortcut: identity, if: "${out == 8}"}
layers:
  - linear: 8
    if: "${expand != 1}"
    id: stem
  - block: {t: 2, out: 8}
    id: a
  - block: {t: 1, out: 4}
    id: b
    in: stem
  - repeat: "${depth}"
    body: [relu]
    id: extra
  - residual: [relu]
    if: false
  - add:
    in: [b, extra]
    id: out
outputs: [a, out]
"""


def test_skipped_layers_have_no_parameters_no_rows_and_pass_their_input_on(tmp_path) -> None:
    model = compile_text(CONDITIONAL)
    names = [n.attrs.name for n in model.graph.parameters()]
    # `stem` is skipped: `in: stem` is the input x; in `b` the first linear is skipped and
    # the other layers keep the names they would have without it (linear_0).
    assert names == [
        "a.linear_0.weight",
        "a.linear_0.bias",
        "a.linear_1.weight",
        "a.linear_1.bias",
        "b.linear_0.weight",
        "b.linear_0.bias",
    ]
    rows = [layer.name for layer in model.summary().layers]
    assert not any(r.startswith(("stem", "extra", "residual")) for r in rows)
    assert model.summary().params == 8 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4
    # a's residual is on (out == 8), b's is off (out 4 != 8): one residual add only
    assert sum(1 for n in model.graph if n.op == "add") == 2  # a's residual, and `out`
    assert_parity(model, tmp_path)


def test_conditions_follow_params_set_on_the_command_line(tmp_path) -> None:
    path = write_spec(tmp_path, CONDITIONAL)
    plain = run_cli("summary", str(path))
    widened = run_cli("summary", str(path), "--set", "expand=2", "--set", "depth=2")
    assert plain.code == 0 and widened.code == 0, plain.output + widened.output
    assert "stem" not in plain.stdout and "extra" not in plain.stdout
    assert "stem" in widened.stdout and "extra.0" in widened.stdout and "extra.1" in widened.stdout


def test_repeat_zero_is_the_identity() -> None:
    model = compile_text(
        """
        dlc: 1
        name: empty_repeat
        inputs:
          x: {shape: [N, 3]}
        layers:
          - repeat: 0
            body: [{linear: 3}]
            id: stack
        outputs: [stack]
        """
    )
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.run({"x": x}, provider="cpu")["stack"], x)
    assert list(model.graph.parameters()) == []


def test_misused_conditions_are_located_errors(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: bad
        inputs:
          x: {shape: [N, 4]}
        layers:
          - linear: 4
            if: "${3}"
          - parameter: [4]
            if: false
            id: bias
          - add:
            in: [x, bias]
          - relu:
            if: "${widht > 2}"
        """,
    )
    result = run_cli("validate", str(path))
    assert result.code == 1 and "Traceback" not in result.output
    assert f"{path}:8:9: error: `if` takes a condition that is true or false, got 3" in result.output
    assert (
        f"{path}:13:13: error: layer 'bias' is skipped (its `if:` is false) and has no input" in result.output
    )
    assert f"{path}:15:9: error: unknown name 'widht'" in result.output


# -- MobileNetV2's inverted residual (plugins/cnn/templates.yaml) --------------------------


class ConvBNReLU6(nn.Sequential):
    """torchvision's Conv2dNormActivation: keys 0 (conv) and 1 (batch norm)."""

    def __init__(self, inp: int, out: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """torchvision's InvertedResidual: its layers are the nn.Sequential `conv`, numbered
    without the expansion when expand_ratio is 1."""

    def __init__(self, inp: int, out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        expand = [ConvBNReLU6(inp, hidden)] if expand_ratio != 1 else []
        self.conv = nn.Sequential(
            *expand,
            ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        self.use_residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return x + h if self.use_residual else h


@pytest.mark.parametrize(
    ("inp", "out", "stride", "expand_ratio"),
    [(8, 8, 1, 1), (8, 16, 2, 6), (16, 16, 1, 6), (16, 24, 1, 4)],
)
def test_inverted_residual_template_matches_torchvision_block(
    inp, out, stride, expand_ratio, tmp_path
) -> None:
    text = f"""
        dlc: 1
        name: mobilenet_block
        inputs:
          x: {{shape: [N, {inp}, 10, 10]}}
        layers:
          - inverted_residual: {{out: {out}, stride: {stride}, expand_ratio: {expand_ratio}}}
            id: block
        """
    reference = InvertedResidual(inp, out, stride, expand_ratio).eval()
    state = random_state(reference)
    weights = {f"block.{k}": v.numpy() for k, v in state.items()}
    unoptimized = compile_with_weights(text, weights, tmp_path, opt_level=0)
    assert {n.attrs.name for n in unoptimized.graph.parameters()} == set(weights)  # same checkpoint
    x = np.random.default_rng(2).standard_normal((2, inp, 10, 10)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    for model in (unoptimized, compile_with_weights(text, weights, tmp_path)):
        actual = model.run({"x": x}, provider="cpu")["block"]
        assert max_relative_error(expected, actual) <= 1e-5
    assert_parity(unoptimized, tmp_path / "eject")


# -- grouped-query attention, whose kv_heads == heads case is multi-head attention -------

GQA = """
dlc: 1
name: gqa
inputs:
  x: {shape: [N, T, 16]}
params:
  heads: 4
  kv_heads: 4
blocks:
  repeat_kv:
    doc: "[N, kv_heads, T, d] -> [N, heads, T, d]: each key/value head serves heads / kv_heads query heads."
    params: {groups: int}
    body:
      - unsqueeze: 2                                   # [N, kv, 1, T, d]
      - constant: {value: "${[[[1.0]]] * groups}"}     # [groups, 1, 1]
        id: ones
      - mul:
        in: [unsqueeze_0, ones]                        # [N, kv, groups, T, d]
      - flatten: {start: 1, end: 2}                    # [N, kv * groups, T, d]
  attention:
    doc: Grouped-query attention; `kv_heads == heads` is multi-head attention.
    params: {dim: int, heads: int, kv_heads: int}
    body:
      - linear: {out: "${dim}", bias: false}
        id: q_proj
      - reshape: [N, T, "${heads}", "${dim // heads}"]
      - transpose: [0, 2, 1, 3]
        id: q
      - linear: {out: "${kv_heads * dim // heads}", bias: false}
        id: k_proj
        in: input
      - reshape: [N, T, "${kv_heads}", "${dim // heads}"]
      - transpose: [0, 2, 3, 1]
        id: k_heads
      - repeat_kv: {groups: "${heads // kv_heads}"}
        id: k
        in: k_heads
        if: "${kv_heads != heads}"
      - linear: {out: "${kv_heads * dim // heads}", bias: false}
        id: v_proj
        in: input
      - reshape: [N, T, "${kv_heads}", "${dim // heads}"]
      - transpose: [0, 2, 1, 3]
        id: v_heads
      - repeat_kv: {groups: "${heads // kv_heads}"}
        id: v
        in: v_heads
        if: "${kv_heads != heads}"
      - matmul:
        in: [q, k]
      - scale: "${(dim // heads) ** -0.5}"
      - softmax
      - matmul:
        in: [softmax_0, v]
      - transpose: [0, 2, 1, 3]
      - reshape: [N, T, "${dim}"]
      - linear: {out: "${dim}", bias: false}
        id: o_proj
layers:
  - attention: {dim: 16, heads: "${heads}", kv_heads: "${kv_heads}"}
    id: attn
"""


def _gqa_reference(
    x: torch.Tensor, state: dict[str, torch.Tensor], heads: int, kv_heads: int
) -> torch.Tensor:
    n, t, dim = x.shape
    d = dim // heads
    q = (x @ state["attn.q_proj.weight"].T).view(n, t, heads, d).transpose(1, 2)
    k = (x @ state["attn.k_proj.weight"].T).view(n, t, kv_heads, d).transpose(1, 2)
    v = (x @ state["attn.v_proj.weight"].T).view(n, t, kv_heads, d).transpose(1, 2)
    k = k.repeat_interleave(heads // kv_heads, dim=1)
    v = v.repeat_interleave(heads // kv_heads, dim=1)
    weights = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(n, t, dim) @ state["attn.o_proj.weight"].T


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_grouped_query_attention_template_matches_torch(kv_heads, tmp_path) -> None:
    path = write_spec(tmp_path, GQA)
    import dlc

    model = dlc.compile(path, overrides={"kv_heads": kv_heads})
    state = {n: torch.from_numpy(a) for n, a in model.weights().items()}
    assert state["attn.k_proj.weight"].shape == (16 // 4 * kv_heads, 16)
    x = np.random.default_rng(3).standard_normal((2, 5, 16)).astype(np.float32)
    with torch.no_grad():
        expected = _gqa_reference(torch.from_numpy(x), state, 4, kv_heads).numpy()
    assert max_relative_error(expected, model.run({"x": x}, provider="cpu")["attn"]) <= 1e-5
    assert_parity(model, tmp_path / "eject", dims={"N": 2, "T": 5})
    has_repeat = any(layer.name.startswith("attn.k.") for layer in model.summary().layers)
    assert has_repeat == (kv_heads != 4)


def test_multi_head_attention_is_the_kv_heads_equals_heads_case(tmp_path) -> None:
    """With kv_heads == heads the template is torch's multi-head attention."""
    import dlc

    model = dlc.compile(write_spec(tmp_path, GQA))
    state = {n: torch.from_numpy(a) for n, a in model.weights().items()}
    x = np.random.default_rng(4).standard_normal((2, 5, 16)).astype(np.float32)
    sequence_first = torch.from_numpy(x).transpose(0, 1)
    with torch.no_grad():
        expected, _ = torch.nn.functional.multi_head_attention_forward(
            sequence_first,
            sequence_first,
            sequence_first,
            16,
            4,
            in_proj_weight=None,
            in_proj_bias=None,
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=state["attn.o_proj.weight"],
            out_proj_bias=None,
            training=False,
            need_weights=False,
            use_separate_proj_weight=True,
            q_proj_weight=state["attn.q_proj.weight"],
            k_proj_weight=state["attn.k_proj.weight"],
            v_proj_weight=state["attn.v_proj.weight"],
        )
    actual = model.run({"x": x}, provider="cpu")["attn"]
    assert max_relative_error(expected.transpose(0, 1).numpy(), actual) <= 1e-5


def test_a_condition_may_read_the_input_shape(tmp_path) -> None:
    """`if: "${input.shape[1] != out}"` is decided when the input is known: a projection
    only when the width changes."""
    path = write_spec(
        tmp_path,
        """
        dlc: 1
        name: maybe_project
        inputs:
          x: {shape: [N, 8]}
        params:
          out: 8
        layers:
          - linear: "${out}"
            if: "${input.shape[1] != out}"
            id: project
          - relu:
            id: act
        """,
    )
    import dlc

    same = dlc.compile(path)
    assert list(same.graph.parameters()) == []
    x = np.random.default_rng(6).standard_normal((2, 8)).astype(np.float32)
    np.testing.assert_array_equal(same.run({"x": x}, provider="cpu")["act"], np.maximum(x, 0))
    changed = dlc.compile(path, overrides={"out": 4})
    assert [n.attrs.name for n in changed.graph.parameters()] == ["project.weight", "project.bias"]
    assert_parity(changed, tmp_path / "eject")
    result = run_cli("summary", str(path), "--set", "out=4")
    assert result.code == 0 and "project" in result.stdout

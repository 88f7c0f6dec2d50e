"""The attention blocks against torch's own modules: dlc's weights loaded (strictly, by
name) into nn.MultiheadAttention, nn.TransformerEncoderLayer and nn.TransformerDecoderLayer
give the same outputs as dlc's ONNX model in ONNX Runtime. Tolerance 1e-5, relative to the
output scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import dlc
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error


def compile_layer(block: str, options: dict, inputs: dict[str, list], **kwargs) -> dlc.CompiledModel:
    """A one-layer spec: `inputs` maps names to shapes; integer ids end their shape with a dtype."""
    declared = {
        name: {"shape": shape[:-1], "dtype": shape[-1]} if isinstance(shape[-1], type) else {"shape": shape}
        for name, shape in inputs.items()
    }
    for entry in declared.values():
        if "dtype" in entry:
            entry["dtype"] = np.dtype(entry["dtype"]).name
    spec = {
        "dlc": 1,
        "name": "layer",
        "inputs": declared,
        "layers": [{block: options, "id": "layer", "in": list(inputs)}],
    }
    return dlc.compile(load_spec("layer.yaml", text=yaml.safe_dump(spec, sort_keys=False)), **kwargs)


def load(module: nn.Module, model: dlc.CompiledModel, prefix: str = "layer.") -> nn.Module:
    state = {k.removeprefix(prefix): torch.from_numpy(v.copy()) for k, v in model.weights().items()}
    module.load_state_dict(state, strict=True)
    return module.eval()


def check(model: dlc.CompiledModel, feeds: dict[str, np.ndarray], expected: torch.Tensor) -> None:
    onnx_output = model.run(feeds, provider="cpu")["layer"]
    assert max_relative_error(expected.detach().numpy(), onnx_output) <= 1e-5
    with torch.no_grad():
        ejected = model.torch_module()(*(torch.from_numpy(feeds[n.attrs.name]) for n in model.graph.inputs()))
    assert max_relative_error(expected.detach().numpy(), ejected.numpy()) <= 1e-5


def rng_arrays(*shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def causal_mask(length: int) -> torch.Tensor:
    return nn.Transformer.generate_square_subsequent_mask(length)


@pytest.mark.parametrize("bias", [True, False])
def test_causal_self_attention_matches_nn_multihead_attention(bias: bool) -> None:
    model = compile_layer(
        "multi_head_attention", {"heads": 4, "causal": True, "bias": bias}, {"x": ["N", "T", 16]}
    )
    (x,) = rng_arrays((2, 7, 16))
    reference = load(nn.MultiheadAttention(16, 4, bias=bias, batch_first=True), model)
    with torch.no_grad():
        expected, _ = reference(*[torch.from_numpy(x)] * 3, attn_mask=causal_mask(7), need_weights=False)
    check(model, {"x": x}, expected)


def test_cross_attention_with_a_key_padding_mask_matches_nn_multihead_attention() -> None:
    model = compile_layer(
        "multi_head_attention",
        {"heads": 2},
        {"x": ["N", "T", 8], "memory": ["N", "S", 8], "keep": ["N", "S", np.int64]},
    )
    x, memory = rng_arrays((3, 4, 8), (3, 6, 8))
    keep = np.ones((3, 6), np.int64)
    keep[0, 4:] = 0
    keep[2, 1:] = 0
    reference = load(nn.MultiheadAttention(8, 2, batch_first=True), model)
    m = torch.from_numpy(memory)
    with torch.no_grad():  # torch's key_padding_mask is True for padding
        expected, _ = reference(torch.from_numpy(x), m, m, key_padding_mask=torch.from_numpy(keep == 0))
    check(model, {"x": x, "memory": memory, "keep": keep}, expected)


def test_separate_projections_take_keys_and_values_of_another_width() -> None:
    model = compile_layer(
        "multi_head_attention", {"heads": 2, "packed": False}, {"x": ["N", "T", 8], "memory": ["N", "S", 6]}
    )
    names = sorted(model.weights())
    assert names == [f"layer.{p}_proj.{w}" for p in ("k", "out", "q", "v") for w in ("bias", "weight")]
    x, memory = rng_arrays((2, 3, 8), (2, 5, 6))
    weights = {k.removeprefix("layer."): torch.from_numpy(v) for k, v in model.weights().items()}
    q = nn.functional.linear(torch.from_numpy(x), weights["q_proj.weight"], weights["q_proj.bias"])
    k = nn.functional.linear(torch.from_numpy(memory), weights["k_proj.weight"], weights["k_proj.bias"])
    v = nn.functional.linear(torch.from_numpy(memory), weights["v_proj.weight"], weights["v_proj.bias"])

    def split_heads(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (2, 4)).transpose(1, 2)  # [N, heads, T, 4]

    scores = split_heads(q) @ split_heads(k).transpose(-1, -2) / 2.0  # sqrt(head dim 4)
    context = (torch.softmax(scores, dim=-1) @ split_heads(v)).transpose(1, 2).flatten(2)
    expected = nn.functional.linear(context, weights["out_proj.weight"], weights["out_proj.bias"])
    check(model, {"x": x, "memory": memory}, expected)


@pytest.mark.parametrize(
    ("options", "torch_options"),
    [
        ({}, {}),
        (
            {"activation": "gelu", "norm_first": True, "eps": 1e-6},
            {"activation": "gelu", "norm_first": True, "layer_norm_eps": 1e-6},
        ),
        ({"bias": False, "activation": "gelu"}, {"bias": False, "activation": "gelu"}),
    ],
    ids=["post-ln-relu", "pre-ln-gelu", "no-bias"],
)
def test_encoder_layer_matches_nn_transformer_encoder_layer(options: dict, torch_options: dict) -> None:
    model = compile_layer(
        "transformer_encoder_layer", {"heads": 4, "ff": 32, **options}, {"x": ["N", "T", 16]}
    )
    reference = load(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, **torch_options), model)
    (x,) = rng_arrays((2, 5, 16))
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))
    check(model, {"x": x}, expected)


def test_encoder_layer_with_a_padding_mask_matches_torch() -> None:
    model = compile_layer(
        "transformer_encoder_layer",
        {"heads": 2, "ff": 16},
        {"x": ["N", "T", 8], "keep": ["N", "T", np.bool_]},
    )
    (x,) = rng_arrays((2, 5, 8))
    keep = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    reference = load(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), model)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(~keep))
    # torch's fast path zeroes padded positions; compare the real tokens only.
    onnx_output = model.run({"x": x, "keep": keep}, provider="cpu")["layer"]
    assert max_relative_error(expected.numpy()[keep], onnx_output[keep]) <= 1e-5


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_nn_transformer_decoder_layer(norm_first: bool) -> None:
    model = compile_layer(
        "transformer_decoder_layer",
        {"heads": 4, "ff": 32, "norm_first": norm_first},
        {"x": ["N", "T", 16], "memory": ["N", "S", 16]},
    )
    x, memory = rng_arrays((2, 6, 16), (2, 4, 16))
    reference = load(nn.TransformerDecoderLayer(16, 4, 32, batch_first=True, norm_first=norm_first), model)
    with torch.no_grad():
        expected = reference(
            torch.from_numpy(x), torch.from_numpy(memory), tgt_mask=causal_mask(6), tgt_is_causal=True
        )
    check(model, {"x": x, "memory": memory}, expected)

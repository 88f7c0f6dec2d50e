"""`rotary_embedding` against HF transformers' own functions: Llama's rotate-half
(`LlamaRotaryEmbedding` + `apply_rotary_pos_emb`, with rope_theta, partial rotary and
position ids) and GPT-J's interleaved layout (`create_sinusoidal_positions` +
`apply_rotary_pos_emb` with `rotate_every_two`). In ONNX Runtime and the ejected torch
module, through the API and the CLI. Tolerance 1e-5 relative to the output scale (the
errors seen are ~1e-6: angles up to ~100 radians in float32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlc.testing import max_relative_error
from tests.conftest import run_cli
from tests.language.parity import compile_text, ejected_outputs, write_spec

transformers = pytest.importorskip("transformers")
from transformers.models.gptj import modeling_gptj  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

TOLERANCE = 1e-5
RNG = np.random.default_rng(31)
HEADS, HEAD_DIM = 3, 8


def rotary_spec(options: str, positions: str | None = None) -> str:
    positions_input = (
        f"  positions: {{shape: {positions}, dtype: int64, range: [0, 100]}}\n" if positions else ""
    )
    return f"""
dlc: 1
name: rotary
inputs:
  x: {{shape: [N, T, {HEADS * HEAD_DIM}]}}
{positions_input}layers:
  - rotary_embedding: {options}
    in: [x{", positions" if positions else ""}]
    id: rotated
"""


def llama_reference(
    x: np.ndarray, positions: np.ndarray, dim: int, theta: float, scaling: dict | None = None
) -> np.ndarray:
    """HF Llama's RoPE on the first `dim` features of each head (the rest pass through, as
    HF's partial-rotary models do); `scaling`: HF's rope_parameters of rope_type llama3."""
    rope = {"rope_type": "llama3", "rope_theta": theta, **scaling} if scaling else {"rope_theta": theta}
    config = transformers.LlamaConfig(
        hidden_size=HEADS * dim,
        num_attention_heads=HEADS,
        head_dim=dim,
        rope_parameters=rope,
        max_position_embeddings=131072,
    )
    rotary = modeling_llama.LlamaRotaryEmbedding(config)
    heads = torch.from_numpy(x).unflatten(-1, (HEADS, HEAD_DIM)).transpose(1, 2)  # [N, heads, T, d]
    rotated, passed = heads[..., :dim], heads[..., dim:]
    cos, sin = rotary(rotated, torch.from_numpy(positions))
    rotated, _ = modeling_llama.apply_rotary_pos_emb(rotated, rotated, cos, sin)
    return torch.cat([rotated, passed], dim=-1).transpose(1, 2).flatten(2).numpy()


def gptj_reference(x: np.ndarray, positions: np.ndarray, dim: int) -> np.ndarray:
    """HF GPT-J's RoPE: interleaved pairs on the first `rotary_dim` features of each head."""
    table = modeling_gptj.create_sinusoidal_positions(200, dim)
    sin, cos = torch.split(table[torch.from_numpy(positions)], dim // 2, dim=-1)  # [N, T, dim/2]
    heads = torch.from_numpy(x).unflatten(-1, (HEADS, HEAD_DIM))  # GPT-J's [N, T, heads, d]
    rotated = modeling_gptj.apply_rotary_pos_emb(heads[..., :dim], sin, cos)
    return torch.cat([rotated, heads[..., dim:]], dim=-1).flatten(2).numpy()


def check(text: str, feeds: dict[str, np.ndarray], expected: np.ndarray, directory) -> None:
    for portable in (False, True):
        actual = compile_text(text, portable=portable).run(feeds, provider="cpu")["rotated"]
        assert max_relative_error(expected, actual) <= TOLERANCE
    ejected = ejected_outputs(compile_text(text), directory, feeds)["rotated"]
    assert max_relative_error(expected, ejected) <= TOLERANCE


@pytest.mark.parametrize(("dim", "theta", "offset"), [(8, 10000.0, 0), (4, 500000.0, 0), (8, 10.0, 37)])
def test_rotate_half_matches_hf_llama(tmp_path, dim, theta, offset) -> None:
    text = rotary_spec(f"{{head_dim: {HEAD_DIM}, dim: {dim}, base: {theta}, offset: {offset}}}")
    for length in (1, 6):
        x = RNG.standard_normal((2, length, HEADS * HEAD_DIM)).astype(np.float32)
        positions = np.broadcast_to(np.arange(offset, offset + length), (2, length)).copy()
        check(text, {"x": x}, llama_reference(x, positions, dim, theta), tmp_path / str(length))


def test_positions_input_matches_hf_llama_position_ids(tmp_path) -> None:
    x = RNG.standard_normal((2, 5, HEADS * HEAD_DIM)).astype(np.float32)
    positions = RNG.integers(0, 100, (2, 5))  # packed sequences, a KV cache's next positions, ...
    expected = llama_reference(x, positions, HEAD_DIM, 10000.0)
    check(
        rotary_spec(f"{HEAD_DIM}", "[N, T]"), {"x": x, "positions": positions}, expected, tmp_path / "batch"
    )
    shared = positions[:1]  # [T]: the same positions for every sequence
    expected = llama_reference(x, np.repeat(shared, 2, axis=0), HEAD_DIM, 10000.0)
    check(rotary_spec(f"{HEAD_DIM}", "[T]"), {"x": x, "positions": shared[0]}, expected, tmp_path / "shared")


@pytest.mark.parametrize("dim", [8, 4])
def test_interleaved_matches_hf_gptj(tmp_path, dim) -> None:
    x = RNG.standard_normal((2, 6, HEADS * HEAD_DIM)).astype(np.float32)
    positions = RNG.integers(0, 200, (2, 6))
    text = rotary_spec(f"{{head_dim: {HEAD_DIM}, dim: {dim}, interleaved: true}}", "[N, T]")
    check(text, {"x": x, "positions": positions}, gptj_reference(x, positions, dim), tmp_path)


def test_cli_rotates_as_hf_llama(tmp_path) -> None:
    path = write_spec(tmp_path, rotary_spec(f"{{head_dim: {HEAD_DIM}, offset: 3}}"))
    x = RNG.standard_normal((1, 4, HEADS * HEAD_DIM)).astype(np.float32)
    np.savez(tmp_path / "inputs.npz", x=x)
    result = run_cli(
        "run", str(path), "--inputs", str(tmp_path / "inputs.npz"), "--output", str(tmp_path / "o.npz")
    )
    assert result.code == 0, result.output
    expected = llama_reference(x, np.arange(3, 7)[None], HEAD_DIM, 10000.0)
    assert max_relative_error(expected, np.load(tmp_path / "o.npz")["rotated"]) <= TOLERANCE


def test_rotary_embedding_stores_no_parameters() -> None:
    model = compile_text(rotary_spec(f"{HEAD_DIM}"))
    assert model.weights() == {} and model.summary().params == 0


def test_onnx_frequencies_are_torch_frequencies_to_the_last_bit() -> None:
    """At position p an angle is off by p times any error in its frequency, so the ONNX
    constant follows HF's torch computation: bit for bit at the common head sizes (Llama 2,
    TinyLlama, Llama 3), within one unit in the last place elsewhere."""
    from dlc.plugins.attention.rotary import rotary_inverse_frequencies

    for base in (10000.0, 30000.0, 500000.0, 1e6):
        for dim in (16, 32, 64, 96, 128, 256):
            ours = rotary_inverse_frequencies(dim, base)
            exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
            theirs = (1.0 / (base**exponents)).numpy()
            assert np.all(np.abs(ours - theirs) <= np.spacing(theirs)), (base, dim)
            if dim in (64, 128) and base in (10000.0, 500000.0):
                assert np.array_equal(ours, theirs), (base, dim)


LLAMA3 = {
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def test_llama3_scaling_matches_hf_rope_type_llama3(tmp_path) -> None:
    """Llama 3.2's long-context frequencies; positions up to 8000 reach the rescaled ones."""
    x = RNG.standard_normal((2, 6, HEADS * HEAD_DIM)).astype(np.float32)
    positions = RNG.integers(0, 8000, (2, 6))
    options = (
        f"{{head_dim: {HEAD_DIM}, base: 500000.0, llama3_scaling: "
        "{factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position: 8192}}"
    )
    expected = llama_reference(x, positions, HEAD_DIM, 500000.0, LLAMA3)
    check(rotary_spec(options, "[N, T]"), {"x": x, "positions": positions}, expected, tmp_path)
    unscaled = llama_reference(x, positions, HEAD_DIM, 500000.0)
    assert max_relative_error(expected, unscaled) > 0.1  # the rescaling matters here

"""specs/attention/llama.yaml against HF transformers' LlamaForCausalLM: the same state_dict
keys, the same parameter count at TinyLlama-1.1B's config (HF's model built on the meta
device), and, at small configs, the same logits after loading HF's state_dict (saved as
safetensors, no renaming) in ONNX Runtime (fused and portable) and the ejected torch
module, through the API and the CLI.

HF's default init (N(0, 0.02)) makes attention almost uniform, which would hide errors in
the rotary embedding or the causal mask; the reference's weights are redrawn larger so the
logits are O(1-10) and attention is peaked. Tolerance: 1e-4 relative to the output scale
(max |dlc - HF| / max(1, max |HF|)), the issue's bar; the errors seen are ~1e-6."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dlc
from dlc.testing import max_relative_error
from tests.conftest import SPECS, run_cli
from tests.language.parity import ejected_outputs

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

SPEC = SPECS / "attention" / "llama.yaml"
TOLERANCE = 1e-4
TINYLLAMA = {  # TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T's config.json
    "vocab_size": 32000,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
TINYLLAMA_PARAMETERS = 1_100_048_384  # HF's count of that config (checked below)


def hf_config(sizes: dict, tie: bool = False) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(
        vocab_size=sizes["vocab"],
        hidden_size=sizes["dim"],
        intermediate_size=sizes["hidden"],
        num_hidden_layers=sizes["layers"],
        num_attention_heads=sizes["heads"],
        num_key_value_heads=sizes["kv_heads"],
        rope_theta=sizes["theta"],
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
        attn_implementation="eager",
    )


def hf_model(sizes: dict, tie: bool = False, seed: int = 0) -> torch.nn.Module:
    """A reference with large random weights: peaked attention, O(1) activations."""
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config(sizes, tie)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)
            else:
                parameter.normal_(0.0, 2.0 / parameter.shape[-1] ** 0.5 if parameter.ndim == 2 else 1.0)
        model.model.embed_tokens.weight.normal_(0.0, 1.0)
    return model


def save_state_dict(model: torch.nn.Module, path: Path, drop: tuple[str, ...] = ()) -> Path:
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k not in drop}
    safetensors_torch.save_file(state, path)
    return path


SMALL = {"vocab": 97, "dim": 64, "layers": 2, "heads": 4, "kv_heads": 2, "hidden": 96, "theta": 10000.0}


def test_parameter_names_are_hf_state_dict_keys() -> None:
    model = dlc.compile(SPEC, overrides=SMALL, opt_level=0)
    reference = transformers.LlamaForCausalLM(hf_config(SMALL))
    ours = {name: array.shape for name, array in model.weights().items()}
    assert ours == {name: tuple(t.shape) for name, t in reference.state_dict().items()}


TINYLLAMA_MACS_T128 = 133_882_183_680  # HF's matmuls at batch 1, 128 tokens (checked below)


@pytest.mark.parametrize("tie", [False, True])
def test_full_size_parameter_and_mac_counts_are_hf_tinyllamas(tie: bool) -> None:
    """HF's model at TinyLlama's config, built on the meta device (no memory, no weights):
    its parameter count, and the MACs FlopCounterMode sees in its eager forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    config = {**TINYLLAMA, "tie_word_embeddings": tie, "attn_implementation": "eager"}
    with torch.device("meta"):
        reference = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            reference(input_ids=torch.zeros((1, 128), dtype=torch.int64))
    hf_count = sum(p.numel() for p in reference.parameters())  # a tied tensor once
    summary = dlc.compile(SPEC, overrides={"tie_embeddings": tie}, opt_level=0).summary({"T": 128})
    assert summary.params == hf_count == TINYLLAMA_PARAMETERS - (32000 * 2048 if tie else 0)
    assert summary.macs == counter.get_total_flops() // 2 == TINYLLAMA_MACS_T128
    assert summary.buffers == 0


CONFIGS = {
    "gqa": SMALL,
    "multi-head": {**SMALL, "kv_heads": 4, "theta": 500.0},
    "multi-query": {**SMALL, "kv_heads": 1, "layers": 1, "theta": 500000.0},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_hf_llama_after_loading_its_state_dict(tmp_path: Path, name: str) -> None:
    sizes = CONFIGS[name]
    reference = hf_model(sizes)
    weights = save_state_dict(reference, tmp_path / "hf.safetensors")
    ids = np.random.default_rng(3).integers(0, sizes["vocab"], (2, 11))
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert np.abs(expected).max() > 3  # peaked attention, not a near-uniform average
    fused_kernel = (
        "ort.group_query_attention" if sizes["kv_heads"] < sizes["heads"] else "ort.multi_head_attention"
    )
    for portable in (False, True):
        model = dlc.compile(SPEC, overrides=sizes, weights=weights, portable=portable)
        assert (fused_kernel in {n.op for n in model.graph}) is not portable
        actual = model.run({"input_ids": ids}, provider="cpu")["logits"]
        assert max_relative_error(expected, actual) <= TOLERANCE, f"portable={portable}"
    ejected = ejected_outputs(model, tmp_path / "ejected", {"input_ids": ids})["logits"]
    assert max_relative_error(expected, ejected) <= TOLERANCE


def test_tied_embeddings_match_hf_with_one_tensor(tmp_path: Path) -> None:
    reference = hf_model(SMALL, tie=True)
    assert reference.lm_head.weight.data_ptr() == reference.model.embed_tokens.weight.data_ptr()
    # HF's state_dict lists the tied tensor under both keys; dlc stores it once.
    weights = save_state_dict(reference, tmp_path / "hf.safetensors", drop=("lm_head.weight",))
    model = dlc.compile(SPEC, overrides={**SMALL, "tie_embeddings": True}, weights=weights)
    assert "lm_head.weight" not in model.weights()
    ids = np.random.default_rng(4).integers(0, SMALL["vocab"], (1, 7))
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert max_relative_error(expected, model.run({"input_ids": ids}, provider="cpu")["logits"]) <= TOLERANCE


def test_cli_compiles_hf_weights_and_runs_them_as_hf(tmp_path: Path) -> None:
    reference = hf_model(SMALL, seed=1)
    weights = save_state_dict(reference, tmp_path / "hf.safetensors")
    sets = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    compiled = run_cli(
        "compile", str(SPEC), *sets, "--weights", str(weights), "-o", str(tmp_path / "llama.onnx")
    )
    assert compiled.code == 0, compiled.output
    ids = np.random.default_rng(5).integers(0, SMALL["vocab"], (2, 6))
    np.savez(tmp_path / "ids.npz", input_ids=ids)
    result = run_cli(
        "run",
        str(tmp_path / "llama.onnx"),
        "--inputs",
        str(tmp_path / "ids.npz"),
        "--output",
        str(tmp_path / "o.npz"),
    )
    assert result.code == 0, result.output
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert max_relative_error(expected, np.load(tmp_path / "o.npz")["logits"]) <= TOLERANCE


def test_changing_a_token_leaves_every_earlier_logit_unchanged() -> None:
    model = dlc.compile(SPEC, overrides=SMALL)
    ids = np.random.default_rng(6).integers(0, SMALL["vocab"], (1, 8))
    changed = ids.copy()
    changed[0, 5] = (ids[0, 5] + 1) % SMALL["vocab"]
    before, after = (model.run({"input_ids": i}, provider="cpu")["logits"] for i in (ids, changed))
    assert np.array_equal(before[:, :5], after[:, :5])
    assert not np.allclose(before[:, 5:], after[:, 5:])


def test_macs_are_what_torch_counts_for_hf_llama() -> None:
    """HF's eager attention runs plain matmuls (keys and values repeated per query head), so
    FlopCounterMode sees every product dlc counts: projections, q k^T, the weighted values
    and the LM head."""
    from torch.utils.flop_counter import FlopCounterMode

    for sizes in CONFIGS.values():
        reference = transformers.LlamaForCausalLM(hf_config(sizes)).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            reference(input_ids=torch.zeros((1, 13), dtype=torch.int64))
        summary = dlc.compile(SPEC, overrides=sizes, opt_level=0).summary({"T": 13})
        assert summary.macs == counter.get_total_flops() // 2


def test_the_ejected_module_loads_hf_state_dict_strictly(tmp_path: Path) -> None:
    """The ejected model.py holds exactly HF's state_dict keys (the rotary frequencies are
    computed, not stored), so `load_state_dict(hf.state_dict(), strict=True)` works on it."""
    import importlib.util

    reference = hf_model(SMALL, seed=2)
    dlc.compile(SPEC, overrides=SMALL, opt_level=0).save(tmp_path, target="torch")
    module_spec = importlib.util.spec_from_file_location("ejected_llama", tmp_path / "model.py")
    assert module_spec is not None and module_spec.loader is not None
    ejected = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(ejected)
    network = ejected.load_model()
    network.load_state_dict(reference.state_dict(), strict=True)
    ids = torch.from_numpy(np.random.default_rng(7).integers(0, SMALL["vocab"], (2, 9)))
    with torch.no_grad():
        expected, actual = reference(input_ids=ids).logits.numpy(), network(ids).numpy()
    assert max_relative_error(expected, actual) <= TOLERANCE


def test_late_positions_of_a_long_prompt_match_hf(tmp_path: Path) -> None:
    """1024 tokens, head size 64: angles reach 1023 radians, so a last-bit difference in a
    rotary frequency would show (3.4e-5 measured with numpy's float32 power; 2.3e-6 with
    frequencies that follow torch's). Tolerance 1e-5 relative to the output scale."""
    sizes = {"vocab": 97, "dim": 128, "layers": 1, "heads": 2, "kv_heads": 1, "hidden": 192, "theta": 10000.0}
    reference = hf_model(sizes)
    weights = save_state_dict(reference, tmp_path / "hf.safetensors")
    ids = np.random.default_rng(8).integers(0, sizes["vocab"], (1, 1024))
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    model = dlc.compile(SPEC, overrides=sizes, weights=weights)
    assert max_relative_error(expected, model.run({"input_ids": ids}, provider="cpu")["logits"]) <= 1e-5


def test_llama3_rope_scaling_matches_hf(tmp_path: Path) -> None:
    """Llama 3.2's structure at a small size: rope_type llama3 (an original context of 64
    tokens, so the rescaling reaches the frequencies a short prompt uses), tied embeddings."""
    sizes = {**SMALL, "theta": 500000.0}
    rope = {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    config = hf_config(sizes, tie=True)
    config.rope_parameters = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        **rope,
        "original_max_position_embeddings": 64,
    }
    torch.manual_seed(9)
    reference = hf_model(sizes, tie=True)
    reference_scaled = transformers.LlamaForCausalLM(config).eval()
    reference_scaled.load_state_dict(reference.state_dict())
    weights = save_state_dict(reference_scaled, tmp_path / "hf.safetensors", drop=("lm_head.weight",))
    ids = np.random.default_rng(10).integers(0, sizes["vocab"], (2, 40))
    with torch.no_grad():
        expected = reference_scaled(input_ids=torch.from_numpy(ids)).logits.numpy()
        unscaled = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert max_relative_error(expected, unscaled) > 1e-2  # the rescaling changes the logits
    overrides = {**sizes, "tie_embeddings": True, "rope_scaling": {**rope, "original_max_position": 64}}
    for portable in (False, True):
        model = dlc.compile(SPEC, overrides=overrides, weights=weights, portable=portable)
        actual = model.run({"input_ids": ids}, provider="cpu")["logits"]
        assert max_relative_error(expected, actual) <= TOLERANCE
    ejected = ejected_outputs(model, tmp_path / "ejected", {"input_ids": ids})["logits"]
    assert max_relative_error(expected, ejected) <= TOLERANCE


def test_llama_3_2_1b_parameter_count_is_hfs() -> None:
    overrides = {
        "vocab": 128256,
        "layers": 16,
        "heads": 32,
        "kv_heads": 8,
        "hidden": 8192,
        "theta": 500000.0,
        "tie_embeddings": True,
        "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
    }
    config = transformers.LlamaConfig(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        reference = transformers.LlamaForCausalLM(config)
    hf_count = sum(p.numel() for p in reference.parameters())
    assert dlc.compile(SPEC, overrides=overrides, opt_level=0).summary().params == hf_count == 1_235_814_400

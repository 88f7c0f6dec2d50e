"""The zoo specs against HF transformers' own models (the strongest evidence of correctness):
dlc's weights, loaded by name into BertModel, GPT2LMHeadModel and ViTForImageClassification,
give the outputs of dlc's ONNX model (ONNX Runtime output and portable ONNX) and of the
ejected PyTorch module. Reduced sizes (2 layers, width 64) keep this fast; the structure is
the full one. transformers comes with the `dev` extra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dlc
from tests.conftest import SPECS

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4  # max |dlc - HF|, the bar; the errors seen are 1e-6 to 2e-5
RNG = np.random.default_rng(11)


def compile_both(spec: str, sizes: dict) -> list[dlc.CompiledModel]:
    """The spec for ONNX Runtime (default) and as portable ONNX."""
    path = SPECS / "attention" / spec
    return [dlc.compile(path, overrides=sizes, portable=portable) for portable in (False, True)]


def assert_matches(models: list[dlc.CompiledModel], feeds: dict, expected: dict[str, np.ndarray]) -> None:
    for model in models:
        outputs = model.run(feeds, provider="cpu")
        for name, reference in expected.items():
            error = np.abs(outputs[name] - reference).max()
            assert error <= TOLERANCE, f"portable={model.portable} {name}: {error:.2e}"
    module = models[0].torch_module()
    with torch.no_grad():
        ejected = module(*(torch.from_numpy(feeds[n.attrs.name]) for n in models[0].graph.inputs()))
    ejected = ejected if isinstance(ejected, tuple) else (ejected,)
    for (name, reference), output in zip(expected.items(), ejected, strict=True):
        assert np.abs(output.numpy() - reference).max() <= TOLERANCE, f"ejected {name}"


def weights(model: dlc.CompiledModel) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array.copy()) for name, array in model.weights().items()}


def test_bert_matches_hf_bert_model_with_a_padding_mask() -> None:
    models = compile_both(
        "bert_base.yaml", {"vocab": 1000, "hidden": 64, "heads": 4, "intermediate": 128, "layers": 2}
    )
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    )
    reference = transformers.BertModel(config).eval()
    reference.load_state_dict(weights(models[0]), strict=True)  # every name and shape agrees
    ids = RNG.integers(0, 1000, (2, 9))
    token_types = RNG.integers(0, 2, (2, 9))
    mask = np.ones((2, 9), np.int64)
    mask[0, 5:] = 0
    with torch.no_grad():
        out = reference(
            input_ids=torch.from_numpy(ids),
            token_type_ids=torch.from_numpy(token_types),
            attention_mask=torch.from_numpy(mask),
        )
    feeds = {"input_ids": ids, "token_type_ids": token_types, "attention_mask": mask}
    expected = {
        "last_hidden_state": out.last_hidden_state.numpy(),
        "pooler_output": out.pooler_output.numpy(),
    }
    assert_matches(models, feeds, expected)


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def test_gpt2_matches_hf_gpt2_lm_head_model() -> None:
    models = compile_both(
        "gpt2_small.yaml", {"vocab": 1000, "context": 16, "dim": 64, "heads": 4, "layers": 2}
    )
    config = transformers.GPT2Config(vocab_size=1000, n_positions=16, n_embd=64, n_layer=2, n_head=4)
    reference = transformers.GPT2LMHeadModel(config).eval()
    # HF's Conv1D keeps weights as [in, out]: the transpose of nn.Linear (nanoGPT does the same).
    state = {k: v.T if k.endswith(CONV1D) else v for k, v in weights(models[0]).items()}
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert missing == ["lm_head.weight"] and unexpected == []  # tied to transformer.wte.weight
    assert reference.lm_head.weight.data_ptr() == reference.transformer.wte.weight.data_ptr()
    ids = RNG.integers(0, 1000, (2, 11))
    with torch.no_grad():
        logits = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    assert_matches(models, {"input_ids": ids}, {"logits": logits})


def vit_state_for_hf(dlc_weights: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """torchvision-style names and packed projections -> HF ViT's names and q/k/v."""
    state = {
        "vit.embeddings.cls_token": dlc_weights["class_token"],
        "vit.embeddings.position_embeddings": dlc_weights["encoder.pos_embedding"],
        "vit.embeddings.patch_embeddings.projection.weight": dlc_weights["conv_proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": dlc_weights["conv_proj.bias"],
        "vit.layernorm.weight": dlc_weights["encoder.ln.weight"],
        "vit.layernorm.bias": dlc_weights["encoder.ln.bias"],
        "classifier.weight": dlc_weights["heads.head.weight"],
        "classifier.bias": dlc_weights["heads.head.bias"],
    }
    pairs = {
        "self_attention.out_proj": "attention.o_proj",
        "mlp.0": "mlp.fc1",
        "mlp.3": "mlp.fc2",
        "ln_1": "layernorm_before",
        "ln_2": "layernorm_after",
    }
    for i in range(layers):
        ours, theirs = f"encoder.layers.encoder_layer_{i}.", f"vit.layers.{i}."
        for kind in ("weight", "bias"):
            packed = dlc_weights[f"{ours}self_attention.in_proj_{kind}"]
            for name, part in zip(("q", "k", "v"), packed.chunk(3), strict=True):
                state[f"{theirs}attention.{name}_proj.{kind}"] = part
            for source, target in pairs.items():
                state[f"{theirs}{target}.{kind}"] = dlc_weights[f"{ours}{source}.{kind}"]
    return state


def test_vit_matches_hf_vit_for_image_classification() -> None:
    sizes = {"patch": 56, "dim": 64, "heads": 4, "mlp": 128, "layers": 2, "classes": 10}
    models = compile_both("vit_b16.yaml", sizes)
    config = transformers.ViTConfig(
        image_size=224,
        patch_size=56,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=10,
        layer_norm_eps=1e-6,  # torchvision's; HF's default is 1e-12
    )
    reference = transformers.ViTForImageClassification(config).eval()
    reference.load_state_dict(vit_state_for_hf(weights(models[0]), 2), strict=True)
    image = RNG.standard_normal((2, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        logits = reference(pixel_values=torch.from_numpy(image)).logits.numpy()
    assert_matches(models, {"image": image}, {"logits": logits})

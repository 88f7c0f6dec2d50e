"""The attention zoo at full size: parameter and MAC counts against the reference models
(shared/reference_models.json: HF transformers 5.24.0, torchvision and torch.nn.Transformer,
counted with torch.utils.flop_counter at batch 1). Lowering only (`opt_level=0`): weights
are never drawn, so even BERT-large is cheap here."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import dlc
from tests.conftest import SPECS

# spec: (parameters, MACs, dims for the MACs) from reference_models.json
REFERENCE = {
    "bert_base.yaml": (109_482_240, 11_174_215_680, {"T": 128}),  # BertModel, pooler, seq 128
    "bert_large.yaml": (335_141_888, 39_461_060_608, {"T": 128}),
    "gpt2_small.yaml": (124_439_808, 145_824_153_600, {"T": 1024}),  # GPT2LMHeadModel, tied
    "vit_b16.yaml": (86_567_656, 17_563_828_224, {}),  # torchvision vit_b_16
    # nn.Transformer + one tied 37,000-token embedding. The reference's 5,646,057,472 MACs
    # miss every attention matmul (see the test below); dlc counts them, as the convention says.
    "transformer_base.yaml": (63_084_544, 8_363_966_464, {"S": 128, "T": 128}),
}


@pytest.mark.parametrize("spec", sorted(REFERENCE))
def test_full_size_parameter_and_mac_counts_match_the_reference(spec: str) -> None:
    params, macs, dims = REFERENCE[spec]
    summary = dlc.compile(SPECS / "attention" / spec, opt_level=0).summary(dims)
    assert summary.params == params
    assert summary.macs == macs
    assert summary.buffers == 0


def test_transformer_macs_count_what_torch_counts_when_attention_is_not_a_fused_kernel() -> None:
    """In eval mode nn.Transformer runs fused attention kernels that FlopCounterMode does not
    see (which is how the reference got 5,646,057,472 at full size); in training mode with
    the math attention backend it runs plain matmuls, and the count equals dlc's."""
    sizes = {"vocab": 100, "d_model": 32, "heads": 4, "d_ff": 64, "layers": 2}
    model = dlc.compile(SPECS / "attention" / "transformer_base.yaml", opt_level=0, overrides=sizes)
    transformer = nn.Transformer(32, 4, 2, 2, 64, dropout=0.0, batch_first=True)
    embedding = nn.Embedding(100, 32)
    src, tgt = torch.randint(0, 100, (1, 9)), torch.randint(0, 100, (1, 7))
    mask = nn.Transformer.generate_square_subsequent_mask(7)

    def count() -> int:
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            transformer(embedding(src), embedding(tgt), tgt_mask=mask) @ embedding.weight.T
        return counter.get_total_flops() // 2

    assert count() == model.summary({"S": 9, "T": 7}).macs
    with torch.no_grad():
        transformer.eval()
        assert count() < model.summary({"S": 9, "T": 7}).macs  # the fused fast path is invisible


def test_parameter_names_follow_the_reference_implementations() -> None:
    def names(spec: str) -> list[str]:
        return [n.attrs.name for n in dlc.compile(SPECS / "attention" / spec, opt_level=0).graph.parameters()]

    transformer = names("transformer_base.yaml")
    assert transformer[:3] == [
        "embedding.weight",
        "encoder.layers.0.self_attn.in_proj_weight",
        "encoder.layers.0.self_attn.in_proj_bias",
    ]
    assert {"decoder.layers.5.multihead_attn.out_proj.weight", "decoder.norm.weight"} <= set(transformer)
    core = set(nn.Transformer(batch_first=True).state_dict())
    assert set(transformer) - core == {"embedding.weight"}
    assert core - set(transformer) == set()
    bert = names("bert_base.yaml")
    assert bert[:2] == ["embeddings.word_embeddings.weight", "embeddings.token_type_embeddings.weight"]
    assert "encoder.layer.11.attention.self.query.weight" in bert
    assert bert[-2:] == ["pooler.dense.weight", "pooler.dense.bias"]
    gpt2 = names("gpt2_small.yaml")
    assert gpt2[:3] == ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight"]
    assert "lm_head.weight" not in gpt2  # tied: the LM head reads transformer.wte.weight
    vit = names("vit_b16.yaml")
    assert vit[:4] == ["conv_proj.weight", "conv_proj.bias", "class_token", "encoder.pos_embedding"]
    assert "encoder.layers.encoder_layer_11.mlp.3.weight" in vit
    assert vit[-2:] == ["heads.head.weight", "heads.head.bias"]

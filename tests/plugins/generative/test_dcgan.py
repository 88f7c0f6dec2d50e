"""DCGAN: the zoo's generator and discriminator are the PyTorch DCGAN tutorial's modules
(rebuilt here in plain torch, as the tutorial writes them): their state_dicts load with no
renaming and the outputs agree within 1e-5 in ONNX Runtime and the ejected torch module;
parameter and MAC counts are reference_models.json's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dlc
from tests.conftest import SPECS
from tests.plugins.generative.flows import torch_run

NZ, NGF, NDF, NC = 100, 64, 64, 3


class Generator(nn.Module):
    """dcgan_faces_tutorial.py's Generator (ngpu left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(NGF * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NGF),
            nn.ReLU(True),
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class Discriminator(nn.Module):
    """dcgan_faces_tutorial.py's Discriminator (ngpu left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(NDF * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


def weights_init(module: nn.Module) -> None:
    """The tutorial's initialization: N(0, 0.02) convs, N(1, 0.02) batch-norm scales; plus
    random running statistics, so that inference-mode batch norm is exercised."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight.data, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight.data, 1.0, 0.02)
        nn.init.normal_(module.bias.data, 0.0, 0.1)
        module.running_mean.normal_(0.0, 0.1)
        module.running_var.uniform_(0.5, 1.5)


CASES = {
    "dcgan_generator.yaml": (Generator, "z", (NZ, 1, 1), 3_576_704, 104_628_224),
    "dcgan_discriminator.yaml": (Discriminator, "image", (NC, 64, 64), 2_765_568, 103_817_216),
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_dcgan_counts_match_the_reference(spec: str) -> None:
    _, _, _, params, macs = CASES[spec]
    summary = dlc.compile(SPECS / "generative" / spec, opt_level=0).summary()
    assert (summary.params, summary.macs) == (params, macs)


@pytest.mark.parametrize("spec", sorted(CASES))
def test_dcgan_loads_the_tutorial_state_dict_and_agrees(spec: str) -> None:
    reference_class, input_name, shape, _, _ = CASES[spec]
    torch.manual_seed(0)
    reference = reference_class()
    reference.apply(weights_init)
    reference.eval()
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = dlc.compile(SPECS / "generative" / spec, weights=state)
    assert sorted(n.attrs.name for n in model.lowered.graph.parameters()) == sorted(state)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    (output,) = model.graph.outputs
    assert np.abs(model.run({input_name: x})[output] - expected).max() <= 1e-5
    assert np.abs(torch_run(model, {input_name: x})[output] - expected).max() <= 1e-5
    assert expected.std() > 1e-3  # the outputs depend on the input

"""The inverse direction (dlc.spec.direction) beyond a single flow: a top-level chain of
invertible layers inverts last first, the inverse of the inverse is the forward map, the
ends are renamed (z in, x out), and what cannot be inverted is a located error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.errors import SpecError
from tests.conftest import run_cli
from tests.plugins.generative.flows import compile_text, torch_run
from tests.plugins.generative.test_flows import perturbed

CHAIN = """dlc: 1
name: chain
inputs:
  x: {shape: [N, 3, 2, 2]}
blocks:
  conv_net:
    body:
      - conv2d: {out: 3, kernel: 1}
layers:
  - actnorm
  - flow:
      steps:
        - affine_coupling: {mask: checkerboard, s: conv_net, t: conv_net}
        - invertible_conv1x1
  - permute: [2, 0, 1]
    id: latent
"""


def test_a_chain_of_invertible_layers_inverts_last_first(tmp_path: Path) -> None:
    forward = perturbed(compile_text(tmp_path, CHAIN))
    inverse = forward.inverse()
    assert [n.attrs.name for n in inverse.graph.inputs()] == ["latent"]
    assert list(inverse.graph.outputs) == ["x"]
    x = np.random.default_rng(3).standard_normal((4, 3, 2, 2)).astype(np.float32)
    for run in (lambda model, inputs: model.run(inputs), torch_run):
        z = run(forward, {"x": x})["latent"]
        assert np.abs(run(inverse, {"latent": z})["x"] - x).max() <= 1e-5
    twice = inverse.inverse()
    assert twice.direction == "forward"
    assert np.abs(twice.run({"x": x})["latent"] - forward.run({"x": x})["latent"]).max() <= 1e-6


def test_the_inverse_loads_the_forward_weights_file(tmp_path: Path) -> None:
    forward = perturbed(compile_text(tmp_path, CHAIN))
    forward.save(tmp_path / "package", target="torch")
    weights = tmp_path / "package" / "weights.safetensors"
    inverse = dlc.compile(tmp_path / "flow.yaml", weights=weights, direction="inverse")
    x = np.random.default_rng(4).standard_normal((2, 3, 2, 2)).astype(np.float32)
    z = forward.run({"x": x})["latent"]
    assert np.abs(inverse.run({"latent": z})["x"] - x).max() <= 1e-5
    out = tmp_path / "inverse.onnx"
    result = run_cli(
        "compile",
        str(tmp_path / "flow.yaml"),
        "--direction",
        "inverse",
        "--weights",
        str(weights),
        "-o",
        str(out),
    )
    assert result.code == 0, result.output
    session = dlc.runtime.Session(str(out), "cpu")
    assert np.abs(session.run({"latent": z})["x"] - x).max() <= 1e-5


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("  - conv_net\n", "layer 'conv_net_0' (a template call) is on the flow path but has no inverse"),
        ("  - actnorm\n  - relu\n", "layer 'relu_0' (block 'relu') is on the flow path but has no inverse"),
        (
            "  - actnorm:\n    id: a\n  - actnorm:\n    in: a\n",
            "layer 'actnorm_0' (block 'actnorm') takes `in:`; the inverse needs a chain of layers",
        ),
    ],
)
def test_what_cannot_be_inverted_is_named(tmp_path: Path, layers: str, message: str) -> None:
    text = CHAIN[: CHAIN.index("layers:")] + "layers:\n" + layers
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    dlc.compile(path)  # the forward map compiles
    with pytest.raises(SpecError) as caught:
        dlc.compile(path, direction="inverse")
    assert message in str(caught.value)
    assert caught.value.location is not None and caught.value.location.line is not None

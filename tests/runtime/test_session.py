"""The ONNX Runtime session: providers really obtained, input checking, random inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

import dlc
from dlc.errors import RuntimeSessionError
from dlc.runtime import Session, random_inputs
from dlc.spec.loader import load_spec
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def session():
    return dlc.compile(SPECS / "mlp.yaml").session("cpu")


def test_reports_the_providers_it_got(session) -> None:
    assert session.providers == ["CPUExecutionProvider"]


def test_auto_prefers_cuda_and_reports_the_fallback() -> None:
    auto = dlc.compile(SPECS / "mlp.yaml").session("auto")
    assert auto.providers[-1] == "CPUExecutionProvider"
    assert set(auto.providers) <= set(onnxruntime.get_available_providers())


def test_cuda_request_fails_loudly_when_the_session_falls_back() -> None:
    model = dlc.compile(SPECS / "mlp.yaml")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(RuntimeSessionError, match="not available"):
            model.session("cuda")
        return
    try:
        cuda = model.session("cuda")
    except RuntimeSessionError as error:  # onnxruntime-gpu without CUDA libraries: a clear error
        assert "fell back" in error.message
    else:
        assert cuda.providers[0] == "CUDAExecutionProvider"


def test_unknown_provider_is_rejected() -> None:
    with pytest.raises(RuntimeSessionError, match="unknown provider 'cdua'") as caught:
        Session(dlc.compile(SPECS / "mlp.yaml").onnx_model(), "cdua")
    assert "cuda" in caught.value.render()


def test_inputs_are_checked_before_running(session) -> None:
    with pytest.raises(RuntimeSessionError) as caught:
        session.run({"y": np.zeros((2, 784), np.float32)})
    text = caught.value.render()
    assert "missing input(s): x" in text and "unexpected input 'y'" in text
    with pytest.raises(RuntimeSessionError, match="do not fit"):
        session.run({"x": np.zeros((2, 783), np.float32)})
    with pytest.raises(RuntimeSessionError, match="dtype int64"):
        session.run({"x": np.zeros((2, 784), np.int64)})


def test_float64_inputs_are_converted(session) -> None:
    assert session.run({"x": np.zeros((2, 784))})["logits"].shape == (2, 10)


def test_random_inputs_use_dims_and_integer_ranges() -> None:
    spec = load_spec(
        "emb.yaml",
        text="dlc: 1\nname: emb\ninputs: {ids: {shape: [N, T], dtype: int64}}\nlayers: [{embedding: {vocab: 7, dim: 3}}]\n",
    )
    session = dlc.compile(spec).session("cpu")
    inputs = random_inputs(session, {"N": 2, "T": 50})
    assert inputs["ids"].shape == (2, 50)
    assert inputs["ids"].min() >= 0 and inputs["ids"].max() < 7  # from the embedding's vocab
    with pytest.raises(RuntimeSessionError, match="no dim named 'M'"):
        random_inputs(session, {"M": 2})


def test_missing_model_file(tmp_path) -> None:
    with pytest.raises(RuntimeSessionError, match="not found"):
        Session(tmp_path / "nope.onnx")


def test_corrupt_model_file(tmp_path) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeSessionError, match="cannot load"):
        Session(path)

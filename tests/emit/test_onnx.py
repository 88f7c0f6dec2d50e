"""ONNX emission: versions, names, dynamic axes, determinism, checker, atomic writes,
external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import dlc
from dlc.emit.onnx import ONNX_IR_VERSION, ONNX_OPSET
from dlc.emit.onnx import writer as onnx_writer
from dlc.errors import EmitError
from dlc.runtime import Session
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def mlp():
    return dlc.compile(SPECS / "mlp.yaml")


def test_opset_ir_version_and_names(mlp) -> None:
    model = mlp.onnx_model()
    assert model.ir_version == ONNX_IR_VERSION == 10
    assert {o.domain: o.version for o in model.opset_import}[""] == ONNX_OPSET >= 20
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and dims[1].dim_value == 784


def test_initializer_names_are_the_parameter_names(mlp) -> None:
    names = {t.name for t in mlp.onnx_model().graph.initializer}
    assert names == set(mlp.weights())
    assert "logits.weight" in names


def test_same_spec_and_seed_give_identical_bytes(tmp_path) -> None:
    first = dlc.compile(SPECS / "residual_mlp.yaml", seed=7).save(tmp_path / "a.onnx")[0]
    second = dlc.compile(SPECS / "residual_mlp.yaml", seed=7).save(tmp_path / "b.onnx")[0]
    other = dlc.compile(SPECS / "residual_mlp.yaml", seed=8).save(tmp_path / "c.onnx")[0]
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_one_file_serves_every_batch_size(mlp, tmp_path) -> None:
    path = mlp.save(tmp_path / "mlp.onnx")[0]
    session = Session(path, "cpu")
    for batch in (1, 3, 17):
        out = session.run({"x": np.zeros((batch, 784), np.float32)})["logits"]
        assert out.shape == (batch, 10)


def test_a_failed_check_leaves_no_file(mlp, tmp_path, monkeypatch) -> None:
    def failing_check(path: str) -> None:
        raise EmitError("simulated checker failure")

    monkeypatch.setattr(onnx_writer, "check_onnx_file", failing_check)
    target = tmp_path / "out.onnx"
    with pytest.raises(EmitError):
        mlp.save(target)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_write(mlp, tmp_path, monkeypatch) -> None:
    target = tmp_path / "out.onnx"
    target.write_bytes(b"previous")
    monkeypatch.setattr(onnx_writer, "check_onnx_file", lambda path: (_ for _ in ()).throw(EmitError("boom")))
    with pytest.raises(EmitError):
        mlp.save(target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]


def test_external_data_layout_loads_and_runs(mlp, tmp_path, monkeypatch) -> None:
    # Models over 2 GB use external data; force the same path on a small model.
    monkeypatch.setattr(onnx_writer, "EXTERNAL_DATA_THRESHOLD", 1024)
    written = mlp.save(tmp_path / "big.onnx")
    assert [p.name for p in written] == ["big.onnx", "big.onnx.data"]
    assert written[0].stat().st_size < 100_000 < written[1].stat().st_size
    onnx.checker.check_model(str(written[0]), full_check=True)
    x = np.ones((2, 784), np.float32)
    np.testing.assert_allclose(
        Session(written[0], "cpu").run({"x": x})["logits"], mlp.run({"x": x})["logits"], atol=1e-6
    )


@pytest.fixture(scope="module")
def sampler():
    """A compiled DDIM sampler of a small U-Net: its weights are the Loop body's initializers,
    in the message (not streamed)."""
    small_unet = {"size": 8, "channels": [16, 32, 32, 32], "groups": 8}
    return dlc.compile(
        SPECS / "generative" / "ddpm_cifar10.yaml",
        overrides=small_unet,
        sampling={"sampler": "ddim", "steps": 2},
    )


def test_a_sampler_streams_its_loop_body_weights_into_the_canonical_encoding(
    sampler, tmp_path, monkeypatch
) -> None:
    # The U-Net's weights are placeholders of the Loop body while the model is built and
    # checked; their data is drawn into the file, which is what protobuf encodes for the
    # model with every weight inline.
    checked = []
    monkeypatch.setattr(
        onnx_writer, "check_onnx_file", lambda path: checked.append(onnx.load(path, load_external_data=False))
    )
    (written,) = sampler.save(tmp_path / "sampler.onnx")
    assert written.read_bytes() == sampler.onnx_model().SerializeToString()
    (model,) = checked
    (loop,) = [n for n in model.graph.node if n.op_type == "Loop"]
    body = onnx.helper.get_attribute_value(next(a for a in loop.attribute if a.name == "body"))
    weights = [t for t in body.initializer if t.name in sampler.streamed_weights()]
    assert len(weights) > 100 and all(t.data_location == onnx.TensorProto.EXTERNAL for t in weights)
    assert len(model.SerializeToString()) < written.stat().st_size // 4


def test_a_model_with_every_weight_in_the_message_is_encoded_once_and_checked(
    sampler, tmp_path, monkeypatch
) -> None:
    checked = []
    monkeypatch.setattr(onnx_writer, "check_onnx_file", lambda path: checked.append(Path(path).read_bytes()))
    inline = sampler.onnx_model()
    (written,) = onnx_writer.save_onnx(inline, tmp_path / "inline.onnx")
    assert checked == [written.read_bytes()] == [inline.SerializeToString()]


def test_a_sampler_over_the_limit_keeps_its_loop_body_weights_in_the_data_file(
    sampler, tmp_path, monkeypatch
) -> None:
    # A compiled diffusion sampler holds the U-Net's weights as initializers of its Loop
    # body; over 2 GB they must go to the data file too (they had been left out of the size
    # and of the move: a 571M-parameter U-Net's sampler failed to serialize).
    inline = sampler.onnx_model()
    weight_bytes = sum(len(t.raw_data) for t in onnx_writer.initializers(inline.graph))
    assert weight_bytes > 100_000 > sum(len(t.raw_data) for t in inline.graph.initializer)
    monkeypatch.setattr(onnx_writer, "EXTERNAL_DATA_THRESHOLD", 100_000)
    written = sampler.save(tmp_path / "sampler.onnx")
    assert [p.name for p in written] == ["sampler.onnx", "sampler.onnx.data"]
    saved = onnx.load(str(written[0]), load_external_data=False)
    moved = [t for t in onnx_writer.initializers(saved.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    # Every parameter (streamed), and every other tensor of 1 KB or more (the schedule's).
    large = {t.name for t in onnx_writer.initializers(inline.graph) if len(t.raw_data) >= 1024}
    assert {t.name for t in moved} == set(sampler.streamed_weights()) | large
    assert any(t.name == "down_blocks.0.resnets.0.conv1.weight" for t in moved)  # a loop body's weight
    assert 0.9 * weight_bytes < written[1].stat().st_size <= weight_bytes
    onnx.checker.check_model(str(written[0]), full_check=True)
    x_T = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    from_file = Session(written[0], "cpu").run({"x_T": x_T})["x_0"]
    np.testing.assert_allclose(
        from_file, Session(inline, "cpu").run({"x_T": x_T})["x_0"], rtol=1e-6, atol=1e-6
    )


def test_unwritable_destination_is_a_clean_error(mlp, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(EmitError, match="cannot write"):
        mlp.save(blocker / "model.onnx")


def test_streamed_weights_give_the_canonical_bytes_of_the_whole_model(tmp_path) -> None:
    # The file is written in pieces, weights streamed; it must be exactly what protobuf
    # serializes for the same model with every weight inline.
    model = dlc.compile(SPECS / "residual_mlp.yaml", seed=3)
    path = model.save(tmp_path / "streamed.onnx")[0]
    assert path.read_bytes() == model.onnx_model().SerializeToString()
    drawn = dlc.compile(SPECS / "residual_mlp.yaml", seed=3)
    drawn.weights()  # tensors drawn up front are streamed from memory instead: same bytes
    assert drawn.save(tmp_path / "drawn.onnx")[0].read_bytes() == path.read_bytes()


def test_the_checker_sees_the_streamed_model_with_placeholder_weights(mlp, tmp_path, monkeypatch) -> None:
    checked = []

    def check(path: str) -> None:
        checked.append(onnx.load(path, load_external_data=False))

    monkeypatch.setattr(onnx_writer, "check_onnx_file", check)
    mlp.save(tmp_path / "out.onnx")
    (model,) = checked
    assert {t.name for t in model.graph.initializer} == set(mlp.weights())
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert len(model.SerializeToString()) < 10_000  # no weights parsed to check the graph


def test_a_failure_while_streaming_leaves_no_file(mlp, tmp_path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure while drawing weights")
        yield

    streamed = mlp.streamed_weights()
    name = next(iter(streamed))
    streamed[name] = onnx_writer.StreamedTensor(streamed[name].nbytes, broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        onnx_writer.save_onnx(mlp.onnx_model(streamed=True), tmp_path / "out.onnx", streamed=streamed)
    assert list(tmp_path.iterdir()) == []

"""PyTorch emission: the ejected package, its names and weights, the fx GraphModule."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import torch

import dlc
from dlc.spec.loader import load_spec
from dlc.testing import max_relative_error
from tests.conftest import SPECS


def import_model(directory):
    spec = importlib.util.spec_from_file_location(f"ejected_{directory.name}", directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ejected_package_matches_onnx_runtime_within_1e5(tmp_path) -> None:
    model = dlc.compile(SPECS / "mlp.yaml")
    written = model.save(tmp_path / "out", target="torch")
    assert sorted(p.name for p in written) == ["model.py", "weights.safetensors"]
    ejected = import_model(tmp_path / "out").load_model()
    x = np.random.default_rng(1).standard_normal((4, 784)).astype(np.float32)
    with torch.no_grad():
        torch_out = ejected(torch.from_numpy(x)).numpy()
    assert np.abs(torch_out - model.run({"x": x})["logits"]).max() <= 1e-5


def test_state_dict_keys_are_the_onnx_initializer_names() -> None:
    model = dlc.compile(SPECS / "residual_mlp.yaml", opt_level=0)
    module = model.torch_module()
    initializers = {t.name for t in model.onnx_model().graph.initializer}
    assert set(module.state_dict()) == initializers


def test_ejected_module_is_readable_code(tmp_path) -> None:
    source = dlc.compile(SPECS / "mlp.yaml").torch_source()
    assert "self.linear_0 = nn.Linear(784, 256)" in source
    assert "x = self.linear_0(x)  # [N, 256]" in source
    assert "logits = self.logits(x)  # [N, 10]" in source
    assert "def load_model(weights: str | Path | None = None) -> Mlp:" in source
    compile(source, "model.py", "exec")


def test_untrained_module_builds_and_is_trainable() -> None:
    namespace: dict = {}
    exec(dlc.compile(SPECS / "mlp.yaml", opt_level=0).torch_source(), namespace)
    module = namespace["Mlp"]()
    out = module(torch.randn(2, 784))
    out.sum().backward()
    assert module.linear_0.weight.grad is not None


def test_graph_module_matches_the_eager_module() -> None:
    model = dlc.compile(SPECS / "residual_mlp.yaml")
    graph_module = model.graph_module()
    assert isinstance(graph_module, torch.fx.GraphModule)
    x = torch.randn(3, 64)
    with torch.no_grad():
        assert torch.allclose(graph_module(x), model.torch_module()(x), atol=1e-6)


def test_several_outputs_come_back_as_a_tuple_in_spec_order(tmp_path) -> None:
    spec = load_spec(
        "two.yaml",
        text=textwrap.dedent(
            """
            dlc: 1
            name: two
            inputs: {a: {shape: [N, 4]}, b: {shape: [N, 4]}}
            layers:
              - add:
                in: [a, b]
                id: total
              - linear: 3
                id: proj
            outputs: [proj, total]
            """
        ),
    )
    model = dlc.compile(spec)
    model.save(tmp_path / "pkg", target="torch")
    module = import_model(tmp_path / "pkg").load_model()
    a, b = np.ones((2, 4), np.float32), np.full((2, 4), 2.0, np.float32)
    with torch.no_grad():
        proj, total = module(torch.from_numpy(a), torch.from_numpy(b))
    expected = model.run({"a": a, "b": b})
    assert max_relative_error(expected["proj"], proj.numpy()) <= 1e-5
    np.testing.assert_array_equal(total.numpy(), expected["total"])


def test_tied_parameters_fall_back_to_functional_form() -> None:
    # A parameter used by two ops cannot belong to one submodule; the module then holds
    # it as a raw parameter and both ops reference it.
    from dlc.emit.torch.eject import build_module, torch_package
    from dlc.ir.builder import GraphBuilder
    from dlc.ir.graph import Graph
    from dlc.ir.init import fan_in_uniform
    from dlc.ir.types import DType, TensorType
    from dlc.registry import default_registry

    graph = Graph("tied")
    builder = GraphBuilder(graph, default_registry())
    x = builder.add_input("x", TensorType(DType.float32, (2, 4))).output
    weight = builder.add_parameter("shared.weight", (4, 4), fan_in_uniform(4)).output
    first = builder.add_op("linear", [x, weight], {}, name="first", module="first").output
    second = builder.add_op("linear", [first, weight], {}, name="second", module="second").output
    graph.outputs["y"] = second
    data = {"shared.weight": np.eye(4, dtype=np.float32) * 2}
    package = torch_package(graph, default_registry(), data, "test")
    assert "F.linear(x, self.shared.weight)" in package.source
    module = build_module(package)
    assert list(module.state_dict()) == ["shared.weight"]
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.ones(2, 4)).numpy(), np.full((2, 4), 4.0))


def test_ids_that_would_shadow_nn_module_attributes_are_refused(tmp_path) -> None:
    from tests.conftest import run_cli

    spec = tmp_path / "reserved.yaml"
    spec.write_text(
        "dlc: 1\nname: r\ninputs: {x: {shape: [N, 4]}}\nlayers:\n  - linear: 4\n    id: training\n"
    )
    assert run_cli("compile", str(spec), "-o", str(tmp_path / "r.onnx")).code == 0  # fine for ONNX
    result = run_cli("compile", str(spec), "--target", "torch", "-o", str(tmp_path / "pkg"))
    assert result.code == 1
    assert "the name 'training'" in result.stderr and f"{spec}:5:5" in result.stderr
    assert not (tmp_path / "pkg" / "model.py").exists()


def test_helpers_are_never_shadowed_by_variables() -> None:
    from dlc.emit.torch.writer import TorchWriter
    from dlc.ir.graph import Graph
    from dlc.registry import default_registry

    writer = TorchWriter(Graph("g"), default_registry())
    writer._used_names.add("double")  # a variable named like the helper, taken first
    source = 'def double(x):\n    """double(x) = 2x."""\n    return 2 * x\n'
    assert writer.helper("double", source) == "double_"
    assert writer.helper("double", source) == "double_"  # emitted once
    assert writer._helpers == {"double_": 'def double_(x):\n    """double_(x) = 2x."""\n    return 2 * x'}
    assert writer.helper("triple", "def triple(x):\n    return 3 * x") == "triple"
    assert "triple" in writer._used_names  # later variables keep off the name


def test_generated_variables_never_shadow_python_builtins() -> None:
    import builtins

    spec = load_spec(
        "shadow.yaml",
        text="dlc: 1\nname: s\ninputs: {x: {shape: [N, 4]}}\nlayers:\n  - linear: 4\n    id: slice\n  - relu:\n    in: x\n    id: input\n  - add:\n    in: [slice, input]\n",
    )
    source = dlc.compile(spec).torch_source()
    forward = source.split("def forward")[1].split("def load_model")[0]
    assigned = {line.split("=")[0].strip() for line in forward.splitlines() if " = " in line}
    assert assigned and not assigned & set(dir(builtins))

"""Initialization: deterministic per (seed, name), and distributed as torch's defaults."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

import dlc
from dlc.ir import init
from dlc.spec.loader import load_spec

SPEC = """
dlc: 1
name: inits
inputs: {ids: {shape: [N], dtype: int64}}
layers:
  - embedding: {vocab: 4000, dim: 64}
  - linear: 300
  - layer_norm
  - batch_norm
"""


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    return dlc.compile(load_spec("inits.yaml", text=SPEC), opt_level=0, seed=seed).weights()


def test_values_depend_only_on_seed_and_name() -> None:
    first, again, other = weights(0), weights(0), weights(1)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["linear_0.weight"], other["linear_0.weight"])
    a = init.uniform(1.0).materialize((3,), np.dtype(np.float32), 0, "x")
    b = init.uniform(1.0).materialize((3,), np.dtype(np.float32), 0, "y")
    assert not np.array_equal(a, b)


def test_distributions_match_torch_defaults() -> None:
    torch.manual_seed(0)
    reference = {
        "linear": torch.nn.Linear(64, 300),
        "embedding": torch.nn.Embedding(4000, 64),
        "layer_norm": torch.nn.LayerNorm(300),
        "batch_norm": torch.nn.BatchNorm1d(300),
    }
    ours = weights()
    # Uniform U(-1/sqrt(64), 1/sqrt(64)): same bound (max within 1%), same spread (std within 5%).
    for name, ref in (
        ("linear_0.weight", reference["linear"].weight),
        ("linear_0.bias", reference["linear"].bias),
    ):
        ref = ref.detach().numpy()
        assert abs(np.abs(ours[name]).max() / 0.125 - 1) < 0.01
        assert abs(ours[name].std() / ref.std() - 1) < 0.05
    embedding = ours["embedding_0.weight"]
    assert abs(embedding.std() - 1.0) < 0.01 and abs(embedding.mean()) < 0.01  # N(0, 1)
    np.testing.assert_array_equal(
        ours["layer_norm_0.weight"], reference["layer_norm"].weight.detach().numpy()
    )
    np.testing.assert_array_equal(ours["layer_norm_0.bias"], reference["layer_norm"].bias.detach().numpy())
    for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_array_equal(
            ours[f"batch_norm_0.{key}"], reference["batch_norm"].state_dict()[key].numpy()
        )
    assert ours["batch_norm_0.num_batches_tracked"].dtype == np.int64


def test_padding_row_starts_at_zero() -> None:
    spec = "dlc: 1\nname: p\ninputs: {ids: {shape: [N], dtype: int64}}\nlayers: [{embedding: {vocab: 10, dim: 4, padding_idx: 3}}]\n"
    table = dlc.compile(load_spec("p.yaml", text=spec)).weights()["embedding_0.weight"]
    assert not table[3].any() and table[2].any()


def test_truncated_normal_stays_within_two_standard_deviations() -> None:
    values = init.truncated_normal(0.02).materialize((100_000,), np.dtype(np.float32), 0, "t")
    assert (
        np.abs(values).max() <= 0.04 and abs(values.std() / 0.02 - 0.88) < 0.02
    )  # std of N truncated at 2 sigma


def test_chunks_give_the_values_of_materialize_piece_by_piece() -> None:
    f32 = np.dtype(np.float32)
    buffers = [np.empty(init.CHUNK, np.float32) for _ in range(2)]
    rotation = iter(buffers * 100)
    cases = {
        "uniform": (init.uniform(0.3), (3, init.CHUNK // 2 + 5)),
        "normal with a zeroed row across a piece boundary": (
            init.normal(1.0, zero_row=2),
            (5, init.CHUNK // 2 + 1),
        ),
        "truncated normal": (init.truncated_normal(0.02), (4, 1000)),
        "constant": (init.constant(0.5), (3, init.CHUNK // 2)),
        "data": (init.from_array(np.arange(12, dtype=np.float32)), (3, 4)),
    }
    for label, (initializer, shape) in cases.items():
        whole = initializer.materialize(shape, f32, 5, "w").reshape(-1)
        pieces = [p.copy() for p in initializer.chunks(shape, f32, 5, "w", lambda: next(rotation))]
        assert all(p.size <= init.CHUNK for p in pieces), label
        np.testing.assert_array_equal(np.concatenate(pieces), whole, err_msg=label)
    zeroed = init.normal(1.0, zero_row=2).materialize((5, init.CHUNK // 2 + 1), f32, 5, "w")
    assert not zeroed[2].any() and zeroed[1].all() and zeroed[3].all()


def test_embedding_std_sets_the_spread_of_the_initial_rows() -> None:
    text = SPEC.replace("embedding: {vocab: 4000, dim: 64}", "embedding: {vocab: 4000, dim: 64, std: 0.02}")
    table = dlc.compile(load_spec("inits.yaml", text=text), opt_level=0).weights()["embedding_0.weight"]
    assert abs(table.std() / 0.02 - 1) < 0.01 and abs(table.mean()) < 1e-3


def test_transformed_draws_sharing_a_stream_see_the_same_values() -> None:
    dtype = np.dtype(np.float32)
    square = init.transformed(init.uniform(1.0), "square", np.square, stream="layer.ring")
    negate = init.transformed(init.uniform(1.0), "negate", np.negative, stream="layer.ring")
    squared, negated = (i.materialize((5,), dtype, 0, name) for i, name in ((square, "a"), (negate, "b")))
    np.testing.assert_array_equal(squared, np.square(negated))
    assert square.describe() == "square(uniform(-1, 1), stream=layer.ring)"
    other_seed = square.materialize((5,), dtype, 1, "a")
    assert not np.array_equal(squared, other_seed)
    alone = init.transformed(init.uniform(1.0), "square", np.square)
    np.testing.assert_array_equal(
        alone.materialize((5,), dtype, 0, "a"), np.square(init.uniform(1.0).materialize((5,), dtype, 0, "a"))
    )


def test_a_zeroed_row_stays_zero_through_a_transform() -> None:
    from dataclasses import replace

    shifted = replace(init.transformed(init.normal(1.0), "plus_one", lambda v: v + 1.0), zero_row=1)
    values = shifted.materialize((3, 4), np.dtype(np.float32), 0, "w")
    assert not values[1].any() and values[0].all() and values[2].all()


def test_parts_jump_ahead_to_the_values_of_materialize_bit_for_bit() -> None:
    # A float32 uniform draw is cut into one part per piece, each drawn by its own
    # generator advanced to the piece's start; together they must be exactly the
    # sequential draw. Anything else stays one sequential part.
    from dataclasses import replace

    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    odd = (3, init.CHUNK + 7)  # an odd size: the last piece is partial and odd
    cases = {
        "uniform, odd size": (init.uniform(0.3), odd, f32, 4),
        "uniform, exactly two pieces": (init.uniform(1.0), (2, init.CHUNK), f32, 2),
        "uniform, less than a piece": (init.uniform(1.0), (5,), f32, 1),
        "uniform, a zeroed row across a piece boundary": (
            replace(init.uniform(0.5), zero_row=1),
            (3, init.CHUNK // 2 + 3),
            f32,
            2,
        ),
        "uniform with a transform": (init.transformed(init.uniform(1.0), "square", np.square), odd, f32, 1),
        "uniform in float64": (init.uniform(1.0), (init.CHUNK + 3,), f64, 1),
        "normal, less than two pieces": (init.normal(0.02), (init.CHUNK + 7,), f32, 1),
        "normal in float64": (init.normal(0.02), (3 * init.CHUNK,), f64, 1),
        "truncated normal": (init.truncated_normal(0.02), (init.CHUNK + 3,), f32, 1),
        "constant": (init.constant(0.5), (init.CHUNK + 3,), f32, 1),
    }
    for label, (initializer, shape, dtype, count) in cases.items():
        whole = initializer.materialize(shape, dtype, 11, "layer.weight").reshape(-1)
        parts = initializer.parts(shape, dtype, 11, "layer.weight")
        assert len(parts.sources) == count and parts.finish is None, label
        drawn = draw_parts(parts)
        assert drawn.dtype == whole.dtype, label
        assert drawn.tobytes() == whole.tobytes(), label


def draw_parts(parts: init.Parts) -> np.ndarray:
    """The values of `parts`, drawn last part first (none may depend on another's drawing),
    then finished in order as a writer does."""
    buffers = iter([np.empty(init.CHUNK, np.float32) for _ in range(len(parts.sources) + 1)])
    drawn = {}
    for index in reversed(range(len(parts.sources))):
        drawn[index] = list(parts.sources[index](partial(next, buffers, None)))
    finish = parts.finish or (lambda index, piece: piece)
    return np.concatenate(
        [finish(index, piece).copy() for index in range(len(drawn)) for piece in drawn[index]]
    )


def test_a_normal_draw_in_parts_is_the_sequential_draw_bit_for_bit() -> None:
    # A float32 normal draw of more than two pieces is cut into parts that start early in
    # the generator's stream; finishing them in order finds where each part's values begin.
    from dataclasses import replace

    f32 = np.dtype(np.float32)
    cases = {
        "three pieces and a few": (init.normal(0.02), (3 * init.CHUNK + 5,), 4),
        "embedding with a zeroed row across a part boundary": (
            replace(init.normal(1.0, mean=0.5), zero_row=2),
            (5, (init.CHUNK - 100) // 2),
            3,
        ),
    }
    for label, (initializer, shape, count) in cases.items():
        for seed, name in [(0, "w"), (11, "layer.weight"), (7, "encoder.embeddings.word_embeddings.weight")]:
            whole = initializer.materialize(shape, f32, seed, name).reshape(-1)
            parts = initializer.parts(shape, f32, seed, name)
            assert len(parts.sources) == count and parts.finish is not None, label
            drawn = draw_parts(parts)
            assert drawn.tobytes() == whole.tobytes(), (label, seed, name)


@pytest.mark.parametrize("words_per_value", [0.9, 1.2], ids=["start guessed early", "start guessed late"])
def test_a_normal_part_whose_start_is_not_found_is_drawn_again_exactly(monkeypatch, words_per_value) -> None:
    # Guesses far off: a part that starts too early cannot find its start in its margin, one
    # that starts too late never sees it; both are drawn again from the tensor's first value.
    from dlc.ir import normal_split

    monkeypatch.setattr(normal_split, "WORDS_PER_VALUE", words_per_value)
    redrawn = []
    original = normal_split.NormalSplit._draw_exactly
    monkeypatch.setattr(
        normal_split.NormalSplit,
        "_draw_exactly",
        lambda self, plan, drawn: (redrawn.append(plan.start), original(self, plan, drawn)),
    )
    shape = (3 * init.CHUNK + 5,)
    f32 = np.dtype(np.float32)
    whole = init.normal(0.02).materialize(shape, f32, 3, "w").reshape(-1)
    drawn = draw_parts(init.normal(0.02).parts(shape, f32, 3, "w"))
    assert drawn.tobytes() == whole.tobytes()
    assert len(redrawn) == 3  # every part after the first


def test_normal_parts_must_be_finished_in_order() -> None:
    parts = init.normal(1.0).parts((3 * init.CHUNK,), np.dtype(np.float32), 0, "w")
    second = next(parts.sources[1](None))
    with pytest.raises(AssertionError, match="part 1 finished after part -1"):
        parts.finish(1, second)


def test_deferred_data_is_computed_once_on_first_read_whoever_reads() -> None:
    import threading

    from dlc.ir.init import deferred_data

    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(2, 3)

    data = deferred_data(compute, np.float32, (2, 3))
    assert data.describe() == "data(float32[2, 3])" and not calls  # described without computing
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(data.materialize((2, 3), np.float32, 0, "w")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert all(r.dtype == np.float32 and np.array_equal(r, np.arange(6).reshape(2, 3)) for r in results)
    pieces = list(data.chunks((2, 3), np.float32, 0, "w"))
    assert np.array_equal(np.concatenate(pieces), np.arange(6, dtype=np.float32)) and len(calls) == 1

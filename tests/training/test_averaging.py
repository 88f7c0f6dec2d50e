"""Polyak averaging, uniform and exponential, against numpy and torch.optim.swa_utils.AveragedModel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dlc.training.optim import AveragingSpec, WeightAverager

STEPS = 100


def averaging_spec(data: dict | str):
    return TypeAdapter(AveragingSpec).validate_python(data)


def make_model() -> torch.nn.Module:
    """A linear layer and batch norm (whose running statistics are buffers), float64."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).double()


def noisy_descent(model: torch.nn.Module, on_step=lambda model: None) -> list[dict[str, np.ndarray]]:
    """SGD on mini-batches of a least-squares problem; calls `on_step(model)` after each step
    and returns the iterates theta_1 .. theta_T."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    inputs, targets = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    iterates = []
    for step in range(STEPS):
        batch = slice((step * 8) % 64, (step * 8) % 64 + 8)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs[batch]), targets[batch]).backward()
        optimizer.step()
        on_step(model)
        iterates.append({name: value.detach().numpy().copy() for name, value in model.state_dict().items()})
    return iterates


def test_uniform_average_is_the_mean_of_the_iterates_after_start() -> None:
    model = make_model()
    averager = WeightAverager(model, averaging_spec({"name": "uniform", "start": 20}))
    iterates = noisy_descent(model, averager.update)
    averaged = averager.state_dict()
    assert averager.count == STEPS - 20
    for name in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = np.mean([iterate[name] for iterate in iterates[20:]], axis=0)  # (1/t) sum theta_i
        np.testing.assert_allclose(averaged[name].numpy(), expected, rtol=0, atol=1e-12)
        if name != "0.bias":  # batch norm cancels the bias before it: its gradient is zero
            assert np.abs(expected - iterates[-1][name]).max() > 1e-3  # the average is not the last iterate
    assert int(averaged["1.num_batches_tracked"]) == STEPS  # counters are copied, not averaged


def test_exponential_average_follows_the_course_recursion() -> None:
    beta = 0.1
    model = make_model()
    averager = WeightAverager(model, averaging_spec({"name": "exponential", "beta": beta}))
    iterates = noisy_descent(model, averager.update)
    for name in ("0.weight", "0.bias", "1.running_var"):
        average = iterates[0][name]  # theta_bar_1 = theta_1
        for iterate in iterates[1:]:
            average = (1 - beta) * average + beta * iterate[name]  # theta_bar_t
        np.testing.assert_allclose(averager.state_dict()[name].numpy(), average, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("spec", "reference_options"),
    [
        ({"name": "uniform"}, {}),
        ({"name": "exponential", "beta": 0.1}, {"multi_avg_fn": get_ema_multi_avg_fn(0.9)}),
    ],
    ids=["uniform", "exponential"],
)
def test_averages_equal_torch_averaged_model(spec: dict, reference_options: dict) -> None:
    model = make_model()
    averager = WeightAverager(model, averaging_spec(spec))
    reference = AveragedModel(model, use_buffers=True, **reference_options)
    noisy_descent(model, lambda model: (averager.update(model), reference.update_parameters(model)))
    expected = reference.module.state_dict()
    for name, value in averager.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-12)


def test_no_averaging_saves_the_last_iterate() -> None:
    model = make_model()
    averager = WeightAverager(model, averaging_spec("none"))
    noisy_descent(model, averager.update)
    for name, value in model.state_dict().items():
        assert torch.equal(averager.state_dict()[name], value)


def test_averager_resumes_from_its_saved_state() -> None:
    """Saved average and counters, loaded into a fresh averager, continue the same recursion."""
    spec = averaging_spec({"name": "uniform"})
    model = torch.nn.Linear(2, 1).double()
    whole = WeightAverager(model, spec)
    first = WeightAverager(model, spec)
    weights = [torch.full((1, 2), float(i), dtype=torch.float64) for i in range(1, 7)]
    for index, weight in enumerate(weights):
        with torch.no_grad():
            model.weight.copy_(weight)
        whole.update(model)
        if index < 3:
            first.update(model)
        if index == 2:
            resumed = WeightAverager(model, spec)
            resumed.load_state_dict(first.state_dict(), count=first.count, steps_seen=first.steps_seen)
        if index > 2:
            resumed.update(model)
    torch.testing.assert_close(resumed.state_dict()["weight"], whole.state_dict()["weight"])
    torch.testing.assert_close(whole.state_dict()["weight"], torch.full((1, 2), 3.5, dtype=torch.float64))


def test_copy_to_loads_the_average_into_a_model() -> None:
    model = torch.nn.Linear(2, 1).double()
    averager = WeightAverager(model, averaging_spec({"name": "exponential", "beta": 0.5}))
    for value in (1.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(value)
        averager.update(model)
    target = torch.nn.Linear(2, 1).double()
    averager.copy_to(target)
    assert torch.equal(target.weight, torch.full((1, 2), 2.0, dtype=torch.float64))

"""The optimizer, schedule and averaging spec models: validation messages, shorthand, schema,
and the Robbins-Monro statements `dlc train` prints."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from dlc.training.optim import (
    AveragingSpec,
    OptimizerSpec,
    ScheduleSpec,
    robbins_monro_conditions,
    schedule_report,
)


class Training(BaseModel):
    """Stands in for train-core's `training:` section."""

    optimizer: OptimizerSpec
    schedule: ScheduleSpec = "constant"  # type: ignore[assignment]
    averaging: AveragingSpec = "none"  # type: ignore[assignment]


def errors_of(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        Training.model_validate(data)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


def test_a_bare_name_means_the_defaults() -> None:
    training = Training.model_validate({"optimizer": "adam", "schedule": "constant", "averaging": "uniform"})
    assert (training.optimizer.name, training.optimizer.lr, training.optimizer.betas) == (
        "adam",
        0.001,
        (0.9, 0.999),
    )
    assert training.averaging.name == "uniform"


def test_unknown_optimizer_gets_did_you_mean_and_the_known_names() -> None:
    ((location, message),) = errors_of({"optimizer": {"name": "adamm", "lr": 0.1}})
    assert location == ("optimizer",)
    assert "unknown optimizer 'adamm'; did you mean 'adam'" in message
    assert "known: sgd, momentum, nesterov, rmsprop, adam, adamw, sgld" in message


def test_unknown_schedule_name_as_a_bare_string() -> None:
    ((_, message),) = errors_of({"optimizer": "sgd", "schedule": "cosin"})
    assert "unknown schedule 'cosin'; did you mean 'cosine'" in message


@pytest.mark.parametrize(
    ("optimizer", "location", "fragment"),
    [
        ({"name": "sgd", "lr": -0.1}, ("optimizer", "sgd", "lr"), "greater than 0"),
        ({"name": "sgd", "lr": 0}, ("optimizer", "sgd", "lr"), "greater than 0"),
        ({"name": "sgd", "lr": float("nan")}, ("optimizer", "sgd", "lr"), "finite number"),
        ({"name": "momentum", "momentum": 1.0}, ("optimizer", "momentum", "momentum"), "less than 1"),
        (
            {"name": "adam", "betas": [0.9, -0.1]},
            ("optimizer", "adam", "betas", 1),
            "greater than or equal to 0",
        ),
        ({"name": "rmsprop", "eps": 0}, ("optimizer", "rmsprop", "eps"), "greater than 0"),
        (
            {"name": "sgd", "weight_decay": -1},
            ("optimizer", "sgd", "weight_decay"),
            "greater than or equal to 0",
        ),
        ({"name": "adam", "grad_clip": 0}, ("optimizer", "adam", "grad_clip"), "greater than 0"),
        ({"name": "sgld", "thinning": 0}, ("optimizer", "sgld", "thinning"), "greater than or equal to 1"),
        ({"name": "sgld", "burn_in": -5}, ("optimizer", "sgld", "burn_in"), "greater than or equal to 0"),
        ({"name": "sgld", "lr": 0.1, "friction": 20}, ("optimizer", "sgld"), "lr * friction must be below 1"),
    ],
)
def test_bad_values_name_the_key_and_the_rule(optimizer: dict, location: tuple, fragment: str) -> None:
    ((found, message),) = errors_of({"optimizer": optimizer})
    assert found == location
    assert fragment in message


def test_misspelled_key_is_an_extra_key_the_spec_loader_turns_into_did_you_mean() -> None:
    ((location, message),) = errors_of({"optimizer": {"name": "sgd", "lrr": 0.1}})
    assert location == ("optimizer", "sgd", "lrr")
    assert "Extra inputs are not permitted" in message


def test_option_of_another_optimizer_is_rejected() -> None:
    """`betas` belongs to adam: sgd does not silently ignore it."""
    ((location, _),) = errors_of({"optimizer": {"name": "sgd", "betas": [0.9, 0.99]}})
    assert location == ("optimizer", "sgd", "betas")


@pytest.mark.parametrize(
    ("schedule", "location", "fragment"),
    [
        (
            {"name": "cosine", "warmup_steps": 100, "total_steps": 50},
            ("schedule", "cosine"),
            "warmup_steps (100)",
        ),
        ({"name": "step", "step_size": 0}, ("schedule", "step", "step_size"), "greater than or equal to 1"),
        (
            {"name": "step", "step_size": 5, "gamma": 1.5},
            ("schedule", "step", "gamma"),
            "less than or equal to 1",
        ),
        ({"name": "robbins_monro", "p": 0}, ("schedule", "robbins_monro", "p"), "greater than 0"),
    ],
)
def test_bad_schedules(schedule: dict, location: tuple, fragment: str) -> None:
    ((found, message),) = errors_of({"optimizer": "sgd", "schedule": schedule})
    assert found == location
    assert fragment in message


def test_exponential_averaging_beta_is_the_weight_of_the_newest_iterate() -> None:
    ((location, message),) = errors_of({"optimizer": "sgd", "averaging": {"name": "exponential", "beta": 0}})
    assert location == ("averaging", "exponential", "beta")
    assert "greater than 0" in message


def test_schema_offers_the_names_and_the_full_forms() -> None:
    schema = json.dumps(Training.model_json_schema())
    for name in (
        "sgd",
        "momentum",
        "nesterov",
        "rmsprop",
        "adam",
        "adamw",
        "sgld",
        "robbins_monro",
        "exponential",
    ):
        assert f'"{name}"' in schema
    assert '"additionalProperties": false' in schema


def test_spec_models_load_without_torch() -> None:
    """Spec loading and `dlc schema` must work in an install without torch."""
    code = "import sys, dlc.training.optim; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------- Robbins-Monro statements


def schedule(data: dict | str):
    return TypeAdapter(ScheduleSpec).validate_python(data)


@pytest.mark.parametrize(
    ("data", "diverges", "square_summable"),
    [
        ("constant", True, False),
        ({"name": "step", "step_size": 10, "gamma": 0.5}, False, True),
        ({"name": "step", "step_size": 10, "gamma": 1.0}, True, False),
        ({"name": "cosine", "total_steps": 100}, False, True),
        ({"name": "cosine", "total_steps": 100, "min_lr_ratio": 0.1}, True, False),
        ({"name": "robbins_monro", "p": 1.0}, True, True),  # the course's 1/t: both hold
        ({"name": "robbins_monro", "p": 0.75}, True, True),
        ({"name": "robbins_monro", "p": 0.5}, True, False),  # the course's 1/sqrt(t): only the first
        ({"name": "robbins_monro", "p": 0.3}, True, False),
        ({"name": "robbins_monro", "p": 1.5}, False, True),
    ],
)
def test_robbins_monro_conditions(data: dict | str, diverges: bool, square_summable: bool) -> None:
    assert robbins_monro_conditions(schedule(data)) == (diverges, square_summable)


def test_report_for_the_course_example_one_over_t() -> None:
    report = schedule_report(schedule({"name": "robbins_monro", "a": 1.0, "b": 0, "p": 1}))
    assert report == (
        "schedule robbins_monro a_t = 1 / (0 + t)^1 (p-series, p = 1): sum a_t = inf holds; "
        "sum a_t^2 < inf holds: meets the Robbins-Monro conditions"
    )


def test_report_for_one_over_square_root_t() -> None:
    report = schedule_report(schedule({"name": "robbins_monro", "p": 0.5}))
    assert "sum a_t = inf holds; sum a_t^2 < inf fails (sum a_t^2 = inf)" in report
    assert report.endswith("does not meet the Robbins-Monro conditions")


def test_report_for_constant_and_geometric_steps() -> None:
    assert schedule_report(schedule("constant")) == (
        "schedule constant a_t = lr: sum a_t = inf holds; sum a_t^2 < inf fails (sum a_t^2 = inf): "
        "does not meet the Robbins-Monro conditions"
    )
    report = schedule_report(schedule({"name": "step", "step_size": 30, "gamma": 0.1}))
    assert "sum a_t = inf fails (sum a_t < inf); sum a_t^2 < inf holds" in report


def test_report_agrees_with_partial_sums() -> None:
    """Numerically: partial sums to 10^6 of a p-series grow without bound exactly when p <= 1."""
    import numpy as np

    t = np.arange(1, 10**6 + 1, dtype=np.float64)
    for p in (0.5, 0.75, 1.0, 1.5):
        diverges, square_summable = robbins_monro_conditions(schedule({"name": "robbins_monro", "p": p}))
        growth = (1 / t**p).sum() - (1 / t[: 10**5] ** p).sum()  # the last 90 % of the terms
        square_growth = (1 / t ** (2 * p)).sum() - (1 / t[: 10**5] ** (2 * p)).sum()
        assert (growth > 0.5) == diverges
        assert (square_growth < 0.5) == square_summable

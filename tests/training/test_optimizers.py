"""Each optimizer and schedule against the course's formula written out in numpy.

The problem is an ill-conditioned quadratic J(theta) = 1/2 (theta - theta*)^T H (theta - theta*)
with condition number 100, rotated so no coordinate decouples. Every one of 100 iterates of
dlc's optimizer (float64, gradients from autograd) must equal the numpy iterate within 1e-6.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from dlc.training.optim import OptimizerSpec, ScheduleSpec, build_optimizer, build_schedule

STEPS = 100
TOLERANCE = 1e-6


def quadratic(
    condition_number: float = 100.0, dimension: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H (eigenvalues 1 .. condition_number, random rotation), theta* and theta_0."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(dimension, dimension)))
    eigenvalues = np.geomspace(1.0, condition_number, dimension)
    hessian = rotation @ np.diag(eigenvalues) @ rotation.T
    return hessian, rng.normal(size=dimension), rng.normal(size=dimension) * 3


HESSIAN, OPTIMUM, START = quadratic()


def gradient(theta: np.ndarray, weight_decay: float = 0.0) -> np.ndarray:
    """grad J(theta) plus the L2 penalty's weight_decay * theta."""
    return HESSIAN @ (theta - OPTIMUM) + weight_decay * theta


def optimizer_spec(data: dict | str):
    return TypeAdapter(OptimizerSpec).validate_python(data)


def schedule_spec(data: dict | str):
    return TypeAdapter(ScheduleSpec).validate_python(data)


def run_dlc(optimizer_data: dict, schedule_data: dict | str = "constant", steps: int = STEPS):
    """dlc's iterates theta_1 .. theta_steps, the step sizes it used, and the optimizer."""
    theta = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    hessian, optimum = torch.tensor(HESSIAN), torch.tensor(OPTIMUM)
    optimizer = build_optimizer(optimizer_spec(optimizer_data), [theta])
    schedule = build_schedule(schedule_spec(schedule_data), optimizer, total_steps=steps)
    iterates, step_sizes = [], []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = 0.5 * (theta - optimum) @ hessian @ (theta - optimum)
        loss.backward()
        step_sizes.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
        iterates.append(theta.detach().numpy().copy())
    return np.array(iterates), np.array(step_sizes), optimizer


def run_torch(optimizer: torch.optim.Optimizer, theta: torch.nn.Parameter, step_sizes=None) -> np.ndarray:
    hessian, optimum = torch.tensor(HESSIAN), torch.tensor(OPTIMUM)
    iterates = []
    for t in range(STEPS):
        if step_sizes is not None:
            optimizer.param_groups[0]["lr"] = step_sizes[t]
        optimizer.zero_grad()
        (0.5 * (theta - optimum) @ hessian @ (theta - optimum)).backward()
        optimizer.step()
        iterates.append(theta.detach().numpy().copy())
    return np.array(iterates)


# ---------------------------------------------------------------- the course's formulas in numpy
# Each takes the step sizes a_1 .. a_T and returns theta_1 .. theta_T.


def course_gradient_descent(step_sizes, weight_decay=0.0):
    theta, iterates = START.copy(), []
    for eta in step_sizes:
        theta = theta - eta * gradient(theta, weight_decay)  # theta_{t+1} = theta_t - eta grad J(theta_t)
        iterates.append(theta)
    return np.array(iterates)


def course_momentum(step_sizes, beta, weight_decay=0.0):
    previous, theta, iterates = START.copy(), START.copy(), []
    for eta in step_sizes:
        # theta^{t+1} = theta^t - eta grad J(theta^t) + beta (theta^t - theta^{t-1})
        previous, theta = theta, theta - eta * gradient(theta, weight_decay) + beta * (theta - previous)
        iterates.append(theta)
    return np.array(iterates)


def course_nesterov(step_sizes, beta, weight_decay=0.0):
    """The look-ahead points y_{t+1} (what the parameters hold) and the iterates theta_{t+1}."""
    previous, theta, look_aheads, iterates = START.copy(), START.copy(), [], []
    for eta in step_sizes:
        look_ahead = theta + beta * (theta - previous)  # theta^{t+1} = theta^t + beta (theta^t - theta^{t-1})
        previous, theta = theta, look_ahead - eta * gradient(look_ahead, weight_decay)  # ... - eta grad f(.)
        iterates.append(theta)
        look_aheads.append(theta + beta * (theta - previous))
    return np.array(look_aheads), np.array(iterates)


def course_rmsprop(step_sizes, beta, eps, weight_decay=0.0):
    theta, square_average, iterates = START.copy(), np.zeros_like(START), []
    for alpha in step_sizes:
        g = gradient(theta, weight_decay)
        square_average = beta * square_average + (1 - beta) * g**2  # E[g^2]_t
        theta = theta - alpha / np.sqrt(square_average + eps) * g
        iterates.append(theta)
    return np.array(iterates)


def course_adam(step_sizes, beta1, beta2, eps, weight_decay=0.0, decoupled_decay=0.0):
    theta, m, v, iterates = START.copy(), np.zeros_like(START), np.zeros_like(START), []
    for t, alpha in enumerate(step_sizes, start=1):
        g = gradient(theta, weight_decay)
        theta = theta * (1 - alpha * decoupled_decay)  # AdamW only (Loshchilov & Hutter)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        theta = theta - alpha / (np.sqrt(v_hat) + eps) * m_hat
        iterates.append(theta)
    return np.array(iterates)


# ---------------------------------------------------------------- schedules in numpy: a_1 .. a_T


def course_step_sizes(schedule: dict | str, lr: float, steps: int = STEPS) -> np.ndarray:
    t = np.arange(1, steps + 1)
    if schedule == "constant":
        return np.full(steps, lr)
    name = schedule["name"]
    if name == "step":
        return lr * schedule["gamma"] ** ((t - 1) // schedule["step_size"])
    if name == "cosine":
        warmup, end, floor = schedule["warmup_steps"], steps, schedule.get("min_lr_ratio", 0.0)
        progress = np.clip((t - 1 - warmup) / (end - warmup), 0, 1)
        cosine = floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * progress))
        return lr * np.where(t <= warmup, t / warmup, cosine)
    if name == "robbins_monro":
        return schedule.get("a", lr) / (schedule.get("b", 0.0) + t) ** schedule["p"]
    raise AssertionError(name)


SCHEDULES = [
    "constant",
    {"name": "step", "step_size": 30, "gamma": 0.5},
    {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1},
    {"name": "robbins_monro", "a": 0.02, "b": 5.0, "p": 0.75},
]

# Step sizes stable for the quadratic (largest eigenvalue 100). RMSProp's eps is large enough
# that its placement (inside or outside the square root) shows in the iterates.
CASES = {
    "sgd": ({"name": "sgd", "lr": 0.015}, lambda a: course_gradient_descent(a)),
    "sgd+decay": (
        {"name": "sgd", "lr": 0.015, "weight_decay": 0.5},
        lambda a: course_gradient_descent(a, 0.5),
    ),
    "momentum": ({"name": "momentum", "lr": 0.01, "momentum": 0.8}, lambda a: course_momentum(a, 0.8)),
    "momentum+decay": (
        {"name": "momentum", "lr": 0.01, "momentum": 0.8, "weight_decay": 0.5},
        lambda a: course_momentum(a, 0.8, 0.5),
    ),
    "nesterov": ({"name": "nesterov", "lr": 0.01, "momentum": 0.8}, lambda a: course_nesterov(a, 0.8)[0]),
    "nesterov+decay": (
        {"name": "nesterov", "lr": 0.01, "momentum": 0.8, "weight_decay": 0.5},
        lambda a: course_nesterov(a, 0.8, 0.5)[0],
    ),
    "rmsprop": (
        {"name": "rmsprop", "lr": 0.01, "beta": 0.9, "eps": 1e-2},
        lambda a: course_rmsprop(a, 0.9, 1e-2),
    ),
    "rmsprop+decay": (
        {"name": "rmsprop", "lr": 0.01, "beta": 0.9, "eps": 1e-2, "weight_decay": 0.5},
        lambda a: course_rmsprop(a, 0.9, 1e-2, 0.5),
    ),
    "adam": (
        {"name": "adam", "lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-3},
        lambda a: course_adam(a, 0.9, 0.99, 1e-3),
    ),
    "adam+decay": (
        {"name": "adam", "lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-3, "weight_decay": 0.5},
        lambda a: course_adam(a, 0.9, 0.99, 1e-3, weight_decay=0.5),
    ),
    "adamw": (
        {"name": "adamw", "lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-3, "weight_decay": 0.5},
        lambda a: course_adam(a, 0.9, 0.99, 1e-3, decoupled_decay=0.5),
    ),
}


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s if isinstance(s, str) else s["name"])
@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_under_schedule_equals_course_formula(case: str, schedule: dict | str) -> None:
    spec, course = CASES[case]
    iterates, step_sizes, _ = run_dlc(spec, schedule)
    np.testing.assert_allclose(step_sizes, course_step_sizes(schedule, spec["lr"]), rtol=0, atol=1e-12)
    expected = course(step_sizes)
    np.testing.assert_allclose(iterates, expected, rtol=0, atol=TOLERANCE)
    assert np.linalg.norm(expected[-1] - expected[0]) > 0.1  # the run moved: the comparison means something


def test_nesterov_keeps_the_course_iterate_theta_as_state() -> None:
    """The parameters hold the look-ahead y_t; the optimizer's state holds theta_t itself."""
    spec = {"name": "nesterov", "lr": 0.01, "momentum": 0.8}
    _, step_sizes, optimizer = run_dlc(spec)
    (theta,) = optimizer.param_groups[0]["params"]
    _, iterates = course_nesterov(step_sizes, 0.8)
    np.testing.assert_allclose(
        optimizer.state[theta]["iterate"].numpy(), iterates[-1], rtol=0, atol=TOLERANCE
    )


@pytest.mark.parametrize(
    ("spec", "torch_class"),
    [
        ({"name": "sgd", "lr": 0.015, "weight_decay": 0.5}, torch.optim.SGD),
        ({"name": "adam", "lr": 0.1, "eps": 1e-3, "weight_decay": 0.5}, torch.optim.Adam),
        ({"name": "adamw", "lr": 0.1, "eps": 1e-3}, torch.optim.AdamW),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_torch_optim_is_used_where_it_computes_the_course_update(spec: dict, torch_class: type) -> None:
    """SGD, Adam and AdamW are torch.optim itself (their iterates equal the course's above)."""
    theta = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    assert type(build_optimizer(optimizer_spec(spec), [theta])) is torch_class


def test_torch_heavy_ball_equals_the_course_only_while_the_step_size_is_constant() -> None:
    """torch.optim.SGD(momentum) scales the momentum term by eta_t / eta_{t-1}: equal under a
    constant step, off the course's formula under a schedule, hence HeavyBallMomentum."""
    constant = np.full(STEPS, 0.01)
    decaying = course_step_sizes({"name": "robbins_monro", "a": 0.02, "b": 5.0, "p": 0.75}, 0.01)
    for step_sizes, equal in [(constant, True), (decaying, False)]:
        theta = torch.nn.Parameter(torch.tensor(START))
        iterates = run_torch(torch.optim.SGD([theta], lr=0.01, momentum=0.8), theta, step_sizes)
        difference = np.abs(iterates - course_momentum(step_sizes, 0.8)).max()
        assert (difference < TOLERANCE) == equal, difference


def test_torch_nesterov_equals_the_course_look_ahead_only_while_the_step_size_is_constant() -> None:
    constant = np.full(STEPS, 0.01)
    decaying = course_step_sizes({"name": "robbins_monro", "a": 0.02, "b": 5.0, "p": 0.75}, 0.01)
    for step_sizes, equal in [(constant, True), (decaying, False)]:
        theta = torch.nn.Parameter(torch.tensor(START))
        optimizer = torch.optim.SGD([theta], lr=0.01, momentum=0.8, nesterov=True)
        difference = np.abs(
            run_torch(optimizer, theta, step_sizes) - course_nesterov(step_sizes, 0.8)[0]
        ).max()
        assert (difference < TOLERANCE) == equal, difference


def test_torch_rmsprop_puts_eps_outside_the_square_root_unlike_the_course() -> None:
    theta = torch.nn.Parameter(torch.tensor(START))
    iterates = run_torch(torch.optim.RMSprop([theta], lr=0.05, alpha=0.9, eps=1e-2), theta)
    course = course_rmsprop(np.full(STEPS, 0.05), 0.9, 1e-2)
    assert np.abs(iterates - course).max() > 1e-3


def test_gradient_clipping_rescales_the_total_norm_before_each_step() -> None:
    """torch's clip_grad_norm_ scales by max_norm / (norm + 1e-6) when the norm is above max_norm."""
    spec = {"name": "momentum", "lr": 0.01, "momentum": 0.8, "grad_clip": 5.0}
    iterates, _, _ = run_dlc(spec)
    previous, theta, expected = START.copy(), START.copy(), []
    for _ in range(STEPS):
        g = gradient(theta)
        g = g * min(1.0, 5.0 / (np.linalg.norm(g) + 1e-6))
        previous, theta = theta, theta - 0.01 * g + 0.8 * (theta - previous)
        expected.append(theta)
    np.testing.assert_allclose(iterates, np.array(expected), rtol=0, atol=TOLERANCE)
    assert np.linalg.norm(gradient(START)) > 5.0  # clipping was active


def test_cosine_schedule_takes_its_end_from_the_spec_before_the_loop() -> None:
    theta = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(optimizer_spec({"name": "sgd", "lr": 1.0}), [theta])
    schedule = build_schedule(
        schedule_spec({"name": "cosine", "total_steps": 4}), optimizer, total_steps=1000
    )
    step_sizes = []
    for _ in range(6):
        step_sizes.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [0.5 * (1 + math.cos(math.pi * k / 4)) for k in (0, 1, 2, 3, 4, 4)]
    np.testing.assert_allclose(step_sizes, expected, atol=1e-12)


def test_cosine_schedule_without_an_end_says_it_needs_one() -> None:
    optimizer = build_optimizer(optimizer_spec("sgd"), [torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="total_steps"):
        build_schedule(schedule_spec("cosine"), optimizer)


def test_robbins_monro_numerator_defaults_to_the_optimizer_step_size() -> None:
    optimizer = build_optimizer(
        optimizer_spec({"name": "sgd", "lr": 0.3}), [torch.nn.Parameter(torch.zeros(1))]
    )
    schedule = build_schedule(schedule_spec("robbins_monro"), optimizer)  # a = lr, b = 0, p = 1: lr / t
    step_sizes = []
    for _ in range(4):
        step_sizes.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    np.testing.assert_allclose(step_sizes, [0.3, 0.15, 0.1, 0.075], atol=1e-12)


@pytest.mark.parametrize("case", ["sgd+decay", "momentum", "nesterov", "rmsprop", "adam", "adamw"])
def test_optimizer_and_schedule_resume_exactly_from_their_state_dicts(case: str) -> None:
    """Interrupted after 40 steps and rebuilt from the saved states, the run continues bit for bit."""
    spec = {**CASES[case][0], "grad_clip": 20.0}
    schedule = {"name": "cosine", "warmup_steps": 10}
    whole, _, _ = run_dlc(spec, schedule)
    hessian, optimum = torch.tensor(HESSIAN), torch.tensor(OPTIMUM)

    def build(theta):
        optimizer = build_optimizer(optimizer_spec(spec), [theta])
        return optimizer, build_schedule(schedule_spec(schedule), optimizer, total_steps=STEPS)

    def advance(theta, optimizer, scheduler, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            (0.5 * (theta - optimum) @ hessian @ (theta - optimum)).backward()
            optimizer.step()
            scheduler.step()

    theta = torch.nn.Parameter(torch.tensor(START))
    optimizer, scheduler = build(theta)
    advance(theta, optimizer, scheduler, 40)
    resumed_theta = torch.nn.Parameter(theta.detach().clone())
    resumed_optimizer, resumed_scheduler = build(resumed_theta)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed_scheduler.load_state_dict(scheduler.state_dict())
    advance(resumed_theta, resumed_optimizer, resumed_scheduler, STEPS - 40)
    assert np.array_equal(resumed_theta.detach().numpy(), whole[-1])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s if isinstance(s, str) else s["name"])
def test_langevin_dynamics_under_schedule_equals_course_formula(schedule: dict | str) -> None:
    """sgld on the same quadratic (E = J, N = 1): v <- (1 - eta gamma) v - eta grad E + sqrt(2 gamma eta T) eps,
    theta <- theta + eta v, with eps drawn from a generator seeded like the optimizer's."""
    spec = {"name": "sgld", "lr": 0.01, "friction": 5.0, "temperature": 0.3, "prior_precision": 0.5}
    theta = torch.nn.Parameter(torch.tensor(START))
    hessian, optimum = torch.tensor(HESSIAN), torch.tensor(OPTIMUM)
    optimizer = build_optimizer(optimizer_spec(spec), [theta], seed=11)
    scheduler = build_schedule(schedule_spec(schedule), optimizer, total_steps=STEPS)
    iterates, step_sizes = [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        (0.5 * (theta - optimum) @ hessian @ (theta - optimum)).backward()
        step_sizes.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        iterates.append(theta.detach().numpy().copy())
    generator = torch.Generator().manual_seed(11)
    position, velocity, expected = START.copy(), np.zeros_like(START), []
    for eta in step_sizes:
        noise = torch.randn(len(START), generator=generator, dtype=torch.float64).numpy()
        energy_gradient = gradient(position) + 0.5 * position  # prior precision 0.5
        velocity = (1 - eta * 5.0) * velocity - eta * energy_gradient + np.sqrt(2 * 5.0 * eta * 0.3) * noise
        position = position + eta * velocity
        expected.append(position)
    np.testing.assert_allclose(np.array(iterates), np.array(expected), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(step_sizes, course_step_sizes(schedule, 0.01), rtol=0, atol=1e-12)

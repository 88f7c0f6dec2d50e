"""The course's optimizers whose update torch.optim does not compute, and gradient clipping.

- Heavy-ball momentum. The course writes theta' = theta - eta g + beta (theta - theta_prev).
  torch.optim.SGD(momentum=beta) keeps a velocity buffer b' = beta b + g and steps
  theta' = theta - eta_t b': the same sequence while eta is constant, but under a schedule its
  momentum term is beta (eta_t / eta_{t-1}) (theta - theta_prev). Here the last displacement
  is the state, so beta multiplies it whatever the schedule does.
- Nesterov. The course takes the gradient at the look-ahead point y = theta + beta (theta -
  theta_prev) and steps theta' = y - eta grad f(y). A training loop can only take gradients
  at the parameters, so the parameters hold y and the optimizer keeps theta as state
  (`state[p]["iterate"]`). torch.optim.SGD(nesterov=True) is this same sequence of y, again
  only while eta is constant.
- RMSProp. The course divides by sqrt(E[g^2] + eps); torch.optim.RMSprop by sqrt(E[g^2]) + eps.

Weight decay is an L2 penalty throughout: g = grad J(theta) + weight_decay * theta.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.optim import Optimizer


class HeavyBallMomentum(Optimizer):
    """theta_{t+1} = theta_t - eta_t g_t + beta (theta_t - theta_{t-1}), with theta_{-1} = theta_0."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = _evaluate(closure)
        for group, param, gradient, state in _course_steps(self):
            if "displacement" not in state:
                state["displacement"] = torch.zeros_like(param)
            displacement = state["displacement"]  # theta_t - theta_{t-1}
            displacement.mul_(group["momentum"]).add_(gradient, alpha=-group["lr"])
            param.add_(displacement)
        return loss


class NesterovMomentum(Optimizer):
    """theta_{t+1} = y_t - eta_t grad f(y_t), y_t = theta_t + beta (theta_t - theta_{t-1}).

    The parameters hold y_t (where the gradient is taken); `state[p]["iterate"]` holds theta_t.
    Both converge to the same minimum; the saved weights are y_T."""

    def __init__(self, params: Iterable[Any], lr: float, momentum: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = _evaluate(closure)
        for group, param, gradient, state in _course_steps(self):
            if "iterate" not in state:
                state["iterate"] = param.detach().clone()  # theta_0 = y_0
            previous = state["iterate"]
            iterate = param - group["lr"] * gradient  # theta_{t+1} = y_t - eta grad f(y_t)
            # y_{t+1} = theta_{t+1} + beta (theta_{t+1} - theta_t)
            param.copy_(iterate + group["momentum"] * (iterate - previous))
            previous.copy_(iterate)
        return loss


class CourseRMSProp(Optimizer):
    """E_t = beta E_{t-1} + (1 - beta) g_t^2; theta_{t+1} = theta_t - alpha g_t / sqrt(E_t + eps)."""

    def __init__(
        self, params: Iterable[Any], lr: float, beta: float, eps: float, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, {"lr": lr, "beta": beta, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = _evaluate(closure)
        for group, param, gradient, state in _course_steps(self):
            if "square_average" not in state:
                state["square_average"] = torch.zeros_like(param)
            square_average = state["square_average"]
            beta = group["beta"]
            square_average.mul_(beta).addcmul_(gradient, gradient, value=1 - beta)
            param.addcdiv_(gradient, (square_average + group["eps"]).sqrt_(), value=-group["lr"])
        return loss


def clip_gradients_before_each_step(optimizer: Optimizer, max_norm: float) -> None:
    """Rescale the gradients of all the optimizer's parameters to total L2 norm `max_norm` when
    above it, as a step pre-hook: the loop needs no extra call, and under a GradScaler the hook
    sees gradients already unscaled. A closure passed to `step()` would compute gradients after
    the hook; dlc's loop passes none."""

    def clip(opt: Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    optimizer.register_step_pre_hook(clip)


def _course_steps(optimizer: Optimizer) -> Iterator[tuple[dict, torch.Tensor, torch.Tensor, dict]]:
    """Each parameter that has a gradient, with its group, its L2-decayed gradient and its state."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param.grad is not None:
                yield group, param, _decayed_gradient(param, group["weight_decay"]), optimizer.state[param]


def _decayed_gradient(param: torch.Tensor, weight_decay: float) -> torch.Tensor:
    assert param.grad is not None
    if weight_decay == 0:
        return param.grad
    return param.grad + weight_decay * param


def _evaluate(closure: Any) -> Any:
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()

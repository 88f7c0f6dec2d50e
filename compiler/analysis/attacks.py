"""Adversarial examples under an `L_p` budget, as the course defines them (input x, label
y, budget eps, `||delta||_p <= eps`):

- loss-based: `max_{||delta|| <= eps} L(f(x + delta), y)`, with L the cross-entropy:
  `fgsm` (one signed-gradient step of size eps, Goodfellow et al.), `pgd` (projected
  signed-gradient ascent in the L_inf ball, Madry et al.) and `pgd-l2` (normalized-gradient
  ascent projected onto the L2 ball);
- untargeted: find delta with `argmax f(x + delta) != y`; `cw` ascends Carlini and Wagner's
  margin `max_{i != y} Z_i - Z_y` (capped at `kappa`, their f6) in the L2 ball, which is
  exactly that goal: the margin turns positive when the prediction flips;
- targeted (`target=t`): `argmax f(x + delta) = t`, by descending `L(f(x + delta), t)`
  (for `cw`, ascending `Z_t - max_{i != t} Z_i`).

The update rules are torchattacks 3.3's, operation for operation (FGSM, PGD, PGDL2), so the
examples agree with it on the same model, inputs and random start. Unlike Carlini and
Wagner's original attack, which minimizes the perturbation without a bound, `cw` here stays
in the budget like the others. Every example ends inside the budget and the input bounds
(`enforce_budget`): float32 rounding of `x + delta` can overshoot eps by one ulp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlc.analysis import AnalysisError
from dlc.analysis.choices import ATTACKS, NORMS
from dlc.lazy_imports import numpy as np

if TYPE_CHECKING:
    import torch

L2_DIVISION_EPS = 1e-10  # torchattacks' eps_for_division


@dataclass(frozen=True)
class AttackConfig:
    """What to run: the attack, its budget `eps` (in its norm), `steps` and `step_size`
    (defaults: 10 steps of 2.5 eps / steps, Madry et al.'s rule), a target class or None,
    a random start inside the ball, the input bounds to clip to (None: unbounded) and the
    CW confidence `kappa`."""

    attack: str
    eps: float
    steps: int | None = None
    step_size: float | None = None
    target: int | None = None
    random_start: bool = False
    bounds: tuple[float, float] | None = (0.0, 1.0)
    kappa: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.attack not in ATTACKS:
            raise AnalysisError(f"unknown attack '{self.attack}'", hint=f"one of {', '.join(ATTACKS)}")
        if not (np.isfinite(self.eps) and self.eps >= 0):
            raise AnalysisError(f"the budget --eps must be a finite number >= 0, got {self.eps:g}")
        if self.steps is not None and self.steps < 1:
            raise AnalysisError(f"--steps must be at least 1, got {self.steps}")
        if self.step_size is not None and not (np.isfinite(self.step_size) and self.step_size > 0):
            raise AnalysisError(f"--step-size must be a positive number, got {self.step_size:g}")
        if not (np.isfinite(self.kappa) and self.kappa >= 0):
            raise AnalysisError(
                f"--kappa (the CW confidence) must be a finite number >= 0, got {self.kappa:g}"
            )
        if self.attack == "fgsm" and self.steps not in (None, 1):
            raise AnalysisError("fgsm is one step of size eps; use pgd for several steps")
        if self.attack == "fgsm" and self.random_start:
            raise AnalysisError("fgsm starts at the input; --random-start applies to pgd, pgd-l2 and cw")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise AnalysisError(f"input bounds must be LOW < HIGH, got {self.bounds}")

    @property
    def norm(self) -> str:
        return NORMS[self.attack]

    @property
    def step_count(self) -> int:
        return 1 if self.attack == "fgsm" else (self.steps or 10)

    @property
    def alpha(self) -> float:
        if self.attack == "fgsm":
            return self.eps
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.step_count


def attack_loss(config: AttackConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The objective the attack ascends: cross-entropy (mean over the batch, as
    torchattacks), its negative towards a target, or the CW margin."""
    import torch.nn.functional as F

    if config.attack == "cw":
        return _cw_margin(config, logits, labels).mean()
    if config.target is not None:
        return -F.cross_entropy(logits, torch_full_like(labels, config.target))
    return F.cross_entropy(logits, labels)


def torch_full_like(labels: torch.Tensor, value: int) -> torch.Tensor:
    import torch

    return torch.full_like(labels, value)


def _cw_margin(config: AttackConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Untargeted: `min(max_{i != y} Z_i - Z_y, kappa)`; targeted: `min(Z_t - max_{i != t} Z_i, kappa)`."""
    import torch

    reference = labels if config.target is None else torch_full_like(labels, config.target)
    one_hot = torch.nn.functional.one_hot(reference, logits.shape[1]).bool()
    own = logits[one_hot]
    best_other = logits.masked_fill(one_hot, float("-inf")).amax(dim=1)
    margin = best_other - own if config.target is None else own - best_other
    return margin.clamp(max=config.kappa)


def adversarial_examples(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    config: AttackConfig,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial examples for `images` against the classifier `logits_of`. `start`
    replaces the random start (a point of the ball around `images`, as given)."""
    import torch

    images = images.detach().clone()
    if config.eps == 0:
        return images  # an empty ball: the clean inputs are the only examples
    generator = torch.Generator().manual_seed(config.seed)
    adversarial = images.clone()
    if start is not None:
        adversarial = _clip(start.detach().clone(), config)
    elif config.random_start and config.attack != "fgsm":
        adversarial = _clip(images + _random_offset(images, config, generator), config)
    for _ in range(config.step_count):
        adversarial.requires_grad_(True)
        cost = attack_loss(config, logits_of(adversarial), labels)
        (gradient,) = torch.autograd.grad(cost, adversarial)
        adversarial = adversarial.detach()
        if config.attack == "fgsm":
            adversarial = _clip(images + config.eps * gradient.sign(), config)
        elif config.norm == "linf":
            adversarial = adversarial + config.alpha * gradient.sign()
            delta = torch.clamp(adversarial - images, min=-config.eps, max=config.eps)
            adversarial = _clip(images + delta, config)
        else:
            adversarial = _l2_step(images, adversarial, gradient, config)
    return enforce_budget(images, adversarial.detach(), config)


def _random_offset(images: torch.Tensor, config: AttackConfig, generator: torch.Generator) -> torch.Tensor:
    """torchattacks' random starts: uniform in the L_inf ball; in the L2 ball a normal
    direction scaled to a uniform fraction of eps."""
    import torch

    if config.norm == "linf":
        return torch.empty_like(images).uniform_(-config.eps, config.eps, generator=generator)
    delta = torch.empty_like(images).normal_(generator=generator)
    norms = delta.reshape(len(images), -1).norm(p=2, dim=1).reshape(-1, *[1] * (images.ndim - 1))
    fraction = torch.zeros_like(norms).uniform_(0, 1, generator=generator)
    return delta * (fraction / norms * config.eps)


def _l2_step(
    images: torch.Tensor, adversarial: torch.Tensor, gradient: torch.Tensor, config: AttackConfig
) -> torch.Tensor:
    import torch

    batch = len(images)
    shape = (batch, *[1] * (images.ndim - 1))
    gradient_norms = torch.norm(gradient.reshape(batch, -1), p=2, dim=1) + L2_DIVISION_EPS
    adversarial = adversarial + config.alpha * (gradient / gradient_norms.reshape(shape))
    delta = adversarial - images
    delta_norms = torch.norm(delta.reshape(batch, -1), p=2, dim=1)
    factor = torch.min(config.eps / delta_norms, torch.ones_like(delta_norms))
    return _clip(images + delta * factor.reshape(shape), config)


def _clip(images: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    import torch

    if config.bounds is None:
        return images
    return torch.clamp(images, min=config.bounds[0], max=config.bounds[1])


def perturbation_norms(images: np.ndarray, adversarial: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample `||delta||_inf` and `||delta||_2`, in float64."""
    delta = (adversarial.astype(np.float64) - images.astype(np.float64)).reshape(len(images), -1)
    return {"linf": np.abs(delta).max(axis=1, initial=0.0), "l2": np.linalg.norm(delta, axis=1)}


def enforce_budget(images: torch.Tensor, adversarial: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    """Move any example whose perturbation exceeds eps in exact arithmetic (float32 rounding
    of `x + delta` overshoots by up to half an ulp of x) back inside: L_inf entries to
    `x + clip(delta)` rounded, then an ulp at a time towards x; L2 perturbations scaled."""
    import torch

    x = images.detach().numpy()
    result = adversarial.detach().numpy().copy()
    for _ in range(16):
        norms = perturbation_norms(x, result)[config.norm]
        over = norms > config.eps
        if not over.any():
            return torch.from_numpy(result)
        delta = result.astype(np.float64) - x
        if config.norm == "linf":
            outside = np.abs(delta) > config.eps
            clipped = (x[outside] + np.clip(delta[outside], -config.eps, config.eps)).astype(result.dtype)
            result[outside] = np.where(clipped == result[outside], np.nextafter(clipped, x[outside]), clipped)
        else:
            scale = (config.eps / norms[over] * (1 - 1e-6)).reshape(-1, *[1] * (x.ndim - 1))
            result[over] = (x[over] + delta[over] * scale).astype(result.dtype)
    raise AssertionError("the perturbation could not be brought inside the budget")

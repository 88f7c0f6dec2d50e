"""The training loop: epochs of batches, one optimizer step per objective phase, evaluation
in eval mode, metrics, checkpoints, and the ways a run ends.

- Train mode while stepping (dropout on, batch norm updating its statistics), eval mode
  for validation and test (`torch.no_grad`).
- A non-finite loss stops the run before its update is applied, with a message naming the
  step and the last good checkpoint, which is kept as it was.
- Ctrl-C (KeyboardInterrupt) finishes nothing half-way: the last completed step is saved
  as a checkpoint and `model.safetensors`, and the run says how to resume.
- Resuming restores weights, optimizer state, the schedule's position, the averaged
  weights, the random state and the place in the epoch: on the CPU the resumed run equals
  the uninterrupted one bit for bit.
- Under torchrun every rank trains its shard (DistributedDataParallel averages the
  gradients); only rank 0 evaluates, logs and writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlc import progress as progress_display
from dlc.errors import DlcError
from dlc.training import optim
from dlc.training.checkpoints import MAIN_MODEL, Progress, load_checkpoint, save_checkpoint, save_tensors
from dlc.training.data import NODES, TARGET, ResumableSampler, eval_batches, graph_batches, train_loader
from dlc.training.distributed import World, all_ranks_agree, join, leave
from dlc.training.metrics import MetricAverage, MetricsLog, plot_loss_curve, plot_sample_grid
from dlc.training.plan import TrainingPlan

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT_FILE = "loss.png"
POSTERIOR_FILE = "posterior.safetensors"
SAMPLES_FILE = "samples.png"


class TrainingStopped(DlcError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainingResult:
    output: Path
    progress: Progress
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> means
    files: list[Path] = field(default_factory=list)
    interrupted: bool = False
    schedule_report: str | None = None


StepHook = Callable[[int], None]


def train(
    plan: TrainingPlan, output: Path, *, resume: bool = False, on_step: StepHook | None = None
) -> TrainingResult:
    """Run the plan; `on_step(step)` is called after every optimizer step (tests use it)."""
    world = join(plan.config.device)
    finished = False
    try:
        result = _Trainer(plan, output, world, on_step).run(resume)
        finished = True
        return result
    finally:
        leave(world, finished=finished)


class _Trainer:
    def __init__(self, plan: TrainingPlan, output: Path, world: World, on_step: StepHook | None) -> None:
        import torch

        self.plan, self.output, self.world, self.on_step = plan, output, world, on_step
        self.config = plan.config
        if self.config.batch_size % world.size:
            raise DlcError(
                f"the batch size {self.config.batch_size} does not split evenly across "
                f"{world.size} processes",
                location=plan.section.location(("batch_size",)),
            )
        self.local_batch = self.config.batch_size // world.size
        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        torch.manual_seed(self.config.seed)
        # Modules in train mode on the device; `self.modules` are the plain modules (their
        # parameter names are the spec's), `self.trained` what each phase calls (DDP-wrapped).
        self.modules = {
            role: model.torch_module().to(world.device).train() for role, model in plan.models.items()
        }
        self.trained = {role: self._wrap(module) for role, module in self.modules.items()}
        train_split = plan.splits.train
        self.train_count = len(train_split[NODES if NODES in train_split else next(iter(train_split))])
        self.optimizers = {
            role: optim.build_optimizer(
                self.config.optimizer,
                list(module.parameters()),
                dataset_size=self.train_count,
                seed=self.config.seed,
            )
            for role, module in self.modules.items()
        }
        self.total_steps = self._total_steps()
        self.schedules = {
            role: optim.build_schedule(self.config.schedule, opt, self.total_steps)
            if self.config.schedule is not None
            else None
            for role, opt in self.optimizers.items()
        }
        main = self.modules[plan.main_role]
        self.averager = optim.WeightAverager(main, self.config.averaging) if self.config.averaging else None
        is_langevin = getattr(self.config.optimizer, "name", "") == "sgld"
        self.posterior = optim.PosteriorSamples(main, self.config.optimizer) if is_langevin else None
        self.progress = Progress()
        self.metrics_log = MetricsLog(output / METRICS_FILE)
        self.checkpoint_path = output / CHECKPOINT_FILE
        self.saved_checkpoint: Path | None = None
        self.interrupted: Callable[[], bool] = lambda: False
        torch.manual_seed(self.config.seed + world.rank)  # noise and dropout differ per rank

    def _total_steps(self) -> int:
        """Optimizer steps of the whole run: epochs of batches, or fewer with max_steps."""
        if self.plan.splits.graph:
            per_epoch = 1
        else:
            per_rank = math.ceil(self.train_count / self.world.size)
            per_epoch = math.ceil(per_rank / self.local_batch)
        total = self.config.epochs * per_epoch
        return min(total, self.config.max_steps) if self.config.max_steps is not None else total

    def _wrap(self, module: torch.nn.Module) -> Any:
        if not self.world.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.world.device.index] if self.world.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    # -- the run --------------------------------------------------------------------------

    def run(self, resume: bool) -> TrainingResult:
        if self.world.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        elif self.world.is_main:
            self.metrics_log.path.unlink(missing_ok=True)
        result = TrainingResult(self.output, self.progress)
        if self.config.schedule is not None:
            result.schedule_report = optim.schedule_report(self.config.schedule)
        try:
            self._epochs()
        except KeyboardInterrupt:
            result.interrupted = True
            if self.world.is_main:
                result.files = self._save_everything()
            return result
        if self.world.is_main:
            result.files = self._save_everything()
            result.metrics = self._final_metrics()
            plot = plot_loss_curve(
                self.metrics_log.read(), self.output / LOSS_PLOT_FILE, self.plan.spec_path.stem
            )
            if plot is not None:
                result.files.append(plot)
            if self.plan.objective.samples is not None:
                result.files.append(self._sample_grid())
        return result

    def _resume(self) -> None:
        restored = load_checkpoint(self.checkpoint_path, self.modules, self.optimizers)
        progress = self.progress = restored.progress
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose
            warnings.simplefilter("ignore", UserWarning)
            for schedule in self.schedules.values():
                for _ in range(progress.step if schedule is not None else 0):
                    schedule.step()  # a LambdaLR's position is its step count
        if self.averager is not None:
            self.averager.load_state_dict(restored.averaged, restored.averaged_count, progress.step)
        if self.posterior is not None:
            self.posterior.load_state_dict(restored.posterior)
        if self.world.is_main:
            self.metrics_log.truncate_after(progress.step)
        self.saved_checkpoint = self.checkpoint_path
        log.info("resumed from %s at step %d (epoch %d)", self.checkpoint_path, progress.step, progress.epoch)

    def _epochs(self) -> None:
        config, plan = self.config, self.plan
        graph = plan.splits.graph
        train_split = plan.splits.train
        sampler = ResumableSampler(
            self.train_count, self.world.size, self.world.rank, config.data.shuffle, config.seed
        )
        total = self.total_steps
        with (
            _deferred_interrupt() as interrupted,
            progress_display.status_task(f"training {plan.spec_path.stem}", total=total) as advance,
        ):
            self.interrupted = interrupted
            advance(self.progress.step, "")
            while self.progress.epoch < config.epochs and not self._done(total):
                sampler.set_epoch(self.progress.epoch, self.progress.examples_in_epoch)
                batches = (
                    graph_batches(train_split)
                    if graph
                    else train_loader(train_split, self.local_batch, sampler)
                )
                if not self._one_epoch(batches, total, advance):
                    break  # max_steps ended the run mid-epoch
                self.progress.epoch += 1
                self.progress.examples_in_epoch = 0
                if self.world.is_main:
                    self._log("validation", self._evaluate("validation"))
                    if self.progress.epoch % config.checkpoint_every == 0:
                        self._checkpoint()

    def _done(self, total: int) -> bool:
        return self.progress.step >= total

    def _one_epoch(self, batches: Any, total: int, advance: Callable[[float, str], None]) -> bool:
        """Steps through the epoch's batches; False when max_steps stopped it early."""
        window = MetricAverage()
        started = time.perf_counter()
        for batch in batches:
            if self._done(total):
                return False
            batch = {key: value.to(self.world.device) for key, value in batch.items()}
            examples = len(batch[NODES]) if NODES in batch else len(next(iter(batch.values())))
            metrics = self._step(batch)
            self.progress.step += 1
            self.progress.examples_in_epoch += examples
            window.add(metrics, examples)
            if self.averager is not None:
                self.averager.update(self.modules[self.plan.main_role])
            if self.posterior is not None:
                self.posterior.update(self.modules[self.plan.main_role])
            for schedule in self.schedules.values():
                if schedule is not None:
                    schedule.step()
            elapsed = time.perf_counter() - started
            rate = window.count * self.world.size / elapsed if elapsed > 0 else 0.0
            advance(1, f"loss {metrics.get('loss', float('nan')):.4f}  {rate:,.0f} ex/s")
            if self.world.is_main and self.progress.step % self.config.log_every == 0:
                self._log(
                    "train", {**window.means(), "examples_per_second": rate, "lr": self._learning_rate()}
                )
                window, started = MetricAverage(), time.perf_counter()
            if self.on_step is not None:
                self.on_step(self.progress.step)
            if self.interrupted():
                raise KeyboardInterrupt  # between steps: everything saved is one whole step
        return True

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One update per phase; a non-finite loss on any rank stops before its update."""
        import torch

        metrics: dict[str, float] = {}
        for phase in self.plan.objective.phases:
            optimizer = self.optimizers[phase.model]
            for _ in range(phase.repeat):
                optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    loss, phase_metrics = phase.loss(self.trained, batch)
                finite = all_ranks_agree(self.world, bool(torch.isfinite(loss.detach()).item()))
                if not finite:
                    self._stop_on_non_finite(loss.item())
                loss.backward()
                optimizer.step()
                metrics.update(phase_metrics)
        return metrics

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.config.precision == "bfloat16" and self.world.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _stop_on_non_finite(self, value: float) -> None:
        where = f"step {self.progress.step + 1} (epoch {self.progress.epoch + 1})"
        kept = (
            f"the last good checkpoint is kept: {self.saved_checkpoint}"
            if self.saved_checkpoint
            else "no checkpoint was saved before it"
        )
        raise TrainingStopped(
            f"the loss became {value} at {where}; training stopped, {kept}",
            location=self.plan.section.location(("optimizer",)),
            hint="lower the learning rate (training.optimizer.lr), clip gradients, or check the data for NaN",
        )

    def _learning_rate(self) -> float:
        optimizer = self.optimizers[
            self.plan.main_role if self.plan.main_role in self.optimizers else MAIN_MODEL
        ]
        return float(optimizer.param_groups[0]["lr"])

    # -- evaluation -----------------------------------------------------------------------

    def _evaluate(self, split: str, weights: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        import torch

        data = self.plan.splits.split(split)
        if not data or len(data.get(NODES, data.get(TARGET, next(iter(data.values()))))) == 0:
            return {}
        average = MetricAverage()
        with self._eval_mode(weights), torch.no_grad():
            for batch in eval_batches(data, self.config.eval_batch_size, self.plan.splits.graph):
                batch = {key: value.to(self.world.device) for key, value in batch.items()}
                examples = len(batch[NODES]) if NODES in batch else len(next(iter(batch.values())))
                _, metrics = self.plan.objective.evaluate(self.modules, batch)
                average.add(metrics, examples)
        return self.plan.objective.finish(average.means())

    @contextlib.contextmanager
    def _eval_mode(self, weights: dict[str, torch.Tensor] | None) -> Iterator[None]:
        """Every model in eval mode (and the main one with `weights`, e.g. the averaged
        ones) for the block; train mode and the trained weights after it."""
        main = self.modules[self.plan.main_role]
        kept = {k: v.detach().clone() for k, v in main.state_dict().items()} if weights else None
        for module in self.modules.values():
            module.eval()
        if weights:
            main.load_state_dict(weights)
        try:
            yield
        finally:
            if kept is not None:
                main.load_state_dict(kept)
            for module in self.modules.values():
                module.train()

    def _sample_grid(self) -> Path:
        """A generator's samples, drawn in eval mode from the saved weights, as a PNG."""
        import torch

        objective = self.plan.objective
        assert objective.samples is not None
        with self._eval_mode(self._deployed_weights()), torch.no_grad():
            images = objective.samples(self.modules, objective.sample_count)
        title = f"{self.plan.spec_path.stem}: {len(images)} samples after {self.progress.step} steps"
        return plot_sample_grid(images.float().cpu().numpy(), self.output / SAMPLES_FILE, title)

    def _final_metrics(self) -> dict[str, dict[str, float]]:
        weights = self._deployed_weights()
        results = {}
        for split in ("validation", "test"):
            results[split] = self._evaluate(split, weights)
            if results[split]:
                self._log(f"final_{split}", results[split])
        return results

    # -- files ----------------------------------------------------------------------------

    def _log(self, split: str, metrics: dict[str, float]) -> None:
        if metrics:
            self.metrics_log.write(
                {"step": self.progress.step, "epoch": self.progress.epoch, "split": split, **metrics}
            )

    def _deployed_weights(self) -> dict[str, torch.Tensor] | None:
        """What `model.safetensors` holds: the averaged weights when averaging is on."""
        if self.averager is None:
            return None
        return dict(self.averager.state_dict())

    def _checkpoint(self) -> None:
        averaged = self._deployed_weights() if self.averager is not None and self.averager.count else None
        save_checkpoint(
            self.checkpoint_path,
            self.modules,
            self.optimizers,
            self.progress,
            averaged=averaged,
            averaged_count=self.averager.count if self.averager is not None else 0,
            posterior=self.posterior.state_dict() if self.posterior is not None else None,
        )
        self.saved_checkpoint = self.checkpoint_path

    def _save_everything(self) -> list[Path]:
        self._checkpoint()
        main = self.plan.main_role
        weights = self._deployed_weights() or self.modules[main].state_dict()
        files = [save_tensors(weights, self.output / MODEL_FILE, {"format": "pt"}), self.checkpoint_path]
        for role, module in self.modules.items():
            if role != main:
                files.append(
                    save_tensors(module.state_dict(), self.output / f"{role}.safetensors", {"format": "pt"})
                )
        if self.posterior is not None:
            # the Langevin samples after burn-in, `{index}/{name}`: predictions average over them
            files.append(save_tensors(self.posterior.state_dict(), self.output / POSTERIOR_FILE))
        if self.metrics_log.path.is_file():
            files.append(self.metrics_log.path)
        return files


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C during a step is acted on after it (the loop asks the callable this yields);
    a second Ctrl-C interrupts at once. Outside the main thread signals cannot be caught,
    and the block runs as is."""
    import signal
    import threading

    requested = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)

"""Compiling a spec as a diffusion sampler (`dlc.compile(spec, sampling=...)`, `dlc compile
--sampler`): resolve the options, build the sampler graph around the lowered network, and
keep what `dlc summary` reports about it (MACs per step and in all)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlc.diffusion.options import resolve_sampling
from dlc.diffusion.sampler_graph import build_sampler_graph
from dlc.diffusion.samplers import SamplerPlan, sampler_plan
from dlc.ir.graph import Graph
from dlc.ir.loops import walk_with_trips
from dlc.ir.symbolic import evaluate_dim
from dlc.spec.loader import Spec
from dlc.spec.sampling import SamplingSection

if TYPE_CHECKING:
    from dlc.registry import Registry


@dataclass
class SamplerModel:
    """A compiled sampler: its options, per-step tables and graph (before passes)."""

    section: SamplingSection
    plan: SamplerPlan
    graph: Graph
    registry: Registry

    def macs(self, dims: Mapping[str, int] | None = None) -> tuple[int, int]:
        """(MACs of one step, MACs of the whole sampler) at `dims` (every symbol 1 unless set)."""
        total = 0
        for node, trips in walk_with_trips(self.graph):
            count = self.registry.op(node.op).macs
            if count is not None:
                total += _evaluate(count(node) * trips, dims)
        return total // self.plan.steps, total

    def describe(self, dims: Mapping[str, int] | None = None) -> str:
        per_step, total = self.macs(dims)
        noise = ", noise input [steps, ...]" if self.plan.stochastic else ""
        return (
            f"sampler {self.section.sampler}, {self.plan.steps} steps of {self.section.train_steps} "
            f"({self.section.schedule} schedule{noise}): {per_step:,} MACs per step, {total:,} in all"
        )


def _evaluate(value: Any, dims: Mapping[str, int] | None) -> int:
    symbols = value.symbols if hasattr(value, "symbols") else frozenset()
    return int(evaluate_dim(value, {**{s: 1 for s in symbols}, **(dims or {})}))


def compile_sampler(
    spec: Spec, network: Graph, overrides: Mapping[str, Any], registry: Registry
) -> SamplerModel:
    section = resolve_sampling(spec, overrides)
    plan = sampler_plan(section)
    graph = build_sampler_graph(network, plan, registry, section.sample, section.timestep)
    return SamplerModel(section, plan, graph, registry)

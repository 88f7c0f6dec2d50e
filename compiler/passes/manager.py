"""The pass contract and the `PassManager` that runs a named pipeline.

A pass has a kebab-case `name` and ``run(graph) -> PassResult(graph, modified)``. Plugins
register passes as `PassInfo` records with the -O level that enables them and a pipeline
phase; `build_pipeline` orders them. `-O0` runs nothing, `-O1` the exact cleanups, `-O2`
(the default) everything, algorithm selection included.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dlc.errors import DlcError, PassError
from dlc.ir.graph import Graph, IRError
from dlc.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from dlc.registry import Registry

log = logging.getLogger(__name__)

# Pipeline phases: passes run in phase order, then in registration order.
PHASE_CLEANUP = 100  # exact simplifications that expose more work to later passes
PHASE_FUSION = 200  # rewrites that merge ops (conv + batch norm, ...)
PHASE_SELECTION = 300  # per-node algorithm choices (direct vs FFT convolution, ...)
PHASE_FINAL = 900  # last tidy-up after the rewrites above

# The level of an opt-in pass: no -O level runs it, `--passes` names it (e.g. a rewrite that
# measured no faster on the development machine but may pay elsewhere).
LEVEL_OPT_IN = 3


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    modified: bool


class Pass(Protocol):
    """`into_bodies` (optional class attribute, default False): also run on loop bodies."""

    name: str

    def run(self, graph: Graph) -> PassResult: ...


@dataclass(frozen=True)
class PassContext:
    """What a pass may need beyond the graph: the op registry, the seed that materializes
    initial weights, whether the output must be portable ONNX, and free-form options
    (``conv_algo``, ...).

    `portable` False (the default) means the model is for ONNX Runtime: passes may use its
    fused contrib ops (``com.microsoft``) where they measure faster. True means standard
    ONNX ops only, for any runtime."""

    registry: Registry
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    portable: bool = False


@dataclass(frozen=True)
class PassInfo:
    """A registered pass: `factory(context)` builds it; `level` is the lowest -O that runs it
    (`LEVEL_OPT_IN`: none; only `--passes` runs it).

    `needs_ops`, when given, are ops without which the pass cannot change a graph (it
    rewrites nothing else, and no pass introduces them): an `-O` pipeline leaves the pass out
    for a graph (loop bodies included) that has none of them, and a plugin whose passes are
    all left out is not imported to optimize it. Empty: the pass may change any graph."""

    name: str
    factory: Callable[[PassContext], Pass]
    description: str
    level: int = 1
    phase: int = PHASE_CLEANUP
    plugin: str = ""
    needs_ops: frozenset[str] = frozenset()

    def may_change(self, ops: Collection[str] | None) -> bool:
        """Whether the pass may change a graph with these ops (None: unknown, so yes)."""
        return may_change(self.needs_ops, ops)


def may_change(needs_ops: Collection[str], ops: Collection[str] | None) -> bool:
    return ops is None or not needs_ops or any(op in ops for op in needs_ops)


def graph_ops(graph: Graph) -> set[str]:
    """Every op in `graph` and in the loop bodies it carries."""
    from dlc.ir.loops import nested_graphs

    ops: set[str] = set()
    pending = [graph]
    while pending:
        for node in pending.pop():
            ops.add(node.op)
            pending.extend(nested_graphs(node))
    return ops


@dataclass(frozen=True)
class PassRecord:
    name: str
    modified: bool
    seconds: float
    notes: tuple[str, ...] = ()  # what a pass reports (rewrites fired, why others did not)


def build_pipeline(
    registry: Registry, level: int, names: Sequence[str] | None = None, ops: Collection[str] | None = None
) -> list[PassInfo]:
    """The passes for `-O{level}`, or exactly `names` in the given order. With `ops` (those
    of the graph to optimize, `graph_ops`), `-O` leaves out passes that cannot change it."""
    if names is not None:
        by_name = {p.name: p for p in registry.passes}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            hint = did_you_mean(unknown[0], by_name)
            raise DlcError(
                f"unknown pass '{unknown[0]}'",
                hint=hint or f"available passes: {', '.join(sorted(by_name))}",
            )
        return [by_name[n] for n in names]
    if level not in (0, 1, 2):
        raise DlcError(f"optimization level must be 0, 1 or 2, not {level}")
    chosen = registry.passes_up_to(level, ops)  # imports only plugins with passes that may apply
    return sorted(chosen, key=lambda p: p.phase)  # stable: registration order within a phase


class PassManager:
    """Runs passes in order; with `verify`, checks the graph after each one."""

    def __init__(self, passes: Sequence[Pass], registry: Registry, *, verify: bool | None = None) -> None:
        self.passes = list(passes)
        self.registry = registry
        self.verify = verify if verify is not None else os.environ.get("DLC_VERIFY") == "1"
        self.records: list[PassRecord] = []

    def run(self, graph: Graph) -> Graph:
        from dlc.ir.verify import verify_graph

        for compiler_pass in self.passes:
            start = time.perf_counter()
            try:
                result = compiler_pass.run(graph)
            except DlcError:
                raise
            except Exception as error:
                raise PassError(
                    f"pass '{compiler_pass.name}' failed: {type(error).__name__}: {error}"
                ) from error
            graph = result.graph
            if getattr(compiler_pass, "into_bodies", False):
                try:
                    modified_bodies = run_in_bodies(compiler_pass, graph)
                except DlcError:
                    raise
                except Exception as error:
                    raise PassError(
                        f"pass '{compiler_pass.name}' failed in a loop body: {type(error).__name__}: {error}"
                    ) from error
                result = PassResult(graph, result.modified or modified_bodies)
            elapsed = time.perf_counter() - start
            notes = tuple(compiler_pass.notes()) if hasattr(compiler_pass, "notes") else ()
            self.records.append(PassRecord(compiler_pass.name, result.modified, elapsed, notes))
            change = "modified the graph" if result.modified else "no change"
            log.info("pass %s: %s (%.1f ms)", compiler_pass.name, change, elapsed * 1e3)
            if self.verify:
                try:
                    verify_graph(graph, self.registry)
                except IRError as error:
                    raise PassError(f"pass '{compiler_pass.name}' left an invalid graph: {error}") from error
        return graph


def run_in_bodies(compiler_pass: Pass, graph: Graph) -> bool:
    """Run `compiler_pass` on every loop body in `graph` (inner bodies first); True if one
    changed. Bodies are copied before the pass runs: the lowered graph and the optimized
    one share them. Only passes that set ``into_bodies = True`` run here (identity removal,
    dead code): one that adds parameters or constants would break the body invariant
    (they live in the top graph). Constant folding finds nothing to fold in a body."""
    from dlc.ir.loops import nested_graphs, with_bodies

    modified = False
    for node in list(graph):
        bodies = nested_graphs(node)
        if not bodies:
            continue
        changed, rewritten = False, []
        for body in bodies:
            copy = body.copy()
            changed |= run_in_bodies(compiler_pass, copy)
            result = compiler_pass.run(copy)
            changed |= result.modified
            rewritten.append(result.graph)
        if changed:
            graph.replace_node(node, with_bodies(node, rewritten))
            modified = True
    return modified

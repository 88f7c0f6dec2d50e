"""Bad set, point-cloud and spectral specs as a user meets them: `dlc validate` in a
subprocess exits 1 with a located message (file:line:col) that names the shapes involved,
and prints no traceback."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import REPO, run_cli

HEADER = """\
dlc: 1
name: bad
inputs:
  sets: {shape: [N, M, 3]}
  flat: {shape: [N, 3]}
  mask: {shape: [N, K], dtype: bool}
  nodes: {shape: [V, 4]}
  basis: {shape: [W, 8]}
  open_basis: {shape: [V, K]}
  cloud: {shape: [N, 3, P]}
  points_last: {shape: [N, P, 3]}
layers:
"""  # layers start on line 13
TEMPLATES = REPO / "plugins" / "geometric" / "templates_sets.yaml"


@dataclass(frozen=True)
class Bad:
    name: str
    layers: str
    location: str  # "LINE:COL" in the spec, or "TEMPLATE:LINE:COL" in the plugin's templates
    message: str


CASES = [
    Bad(
        "set-pool-of-a-matrix",
        "  - set_pool: max\n    in: flat\n",
        "13:5",
        "set_pool layer 'set_pool_0': expects a set [N, M, F] (batch, elements, features), got [N, 3]",
    ),
    Bad(
        "mask-of-another-set-size",
        "  - set_pool: sum\n    in: [sets, mask]\n",
        "13:5",
        "the padding mask [N, K] does not match the set [N, M, 3]: it must be [N, M] (batch, elements)",
    ),
    Bad(
        "perm-equivariant-of-a-matrix",
        "  - perm_equivariant: 8\n    in: flat\n",
        "13:5",
        "perm_equivariant layer 'perm_equivariant_0': expects a set [N, M, F] (batch, elements, features), "
        "got [N, 3]",
    ),
    Bad(
        "perm-equivariant-mask-mismatch",
        "  - perm_equivariant: 8\n    in: [sets, mask]\n",
        "13:5",
        "the padding mask [N, K] does not match the set [N, M, 3]: it must be [N, M]",
    ),
    Bad(
        "perm-equivariant-sum-pool",
        "  - perm_equivariant: {out: 8, pool: sum}\n    in: sets\n",
        "13:38",
        "invalid 'pool' of block 'perm_equivariant': expected 'max' or 'mean' (got 'sum')",
    ),
    Bad(
        "eigenbasis-of-another-graph",
        "  - spectral_conv: 4\n    in: [nodes, basis]\n",
        "13:5",
        "the eigenbasis [W, 8] must have one row per node of x [V, 4]: expected [V, K]",
    ),
    Bad(
        "eigenbasis-of-wrong-rank",
        "  - spectral_conv: 4\n    in: [nodes, sets]\n",
        "13:5",
        "the eigenbasis [N, M, 3] must be [V, K] with x [V, 4]",
    ),
    Bad(
        "eigenbasis-with-symbolic-k",
        "  - spectral_conv: 4\n    in: [nodes, open_basis]\n",
        "13:5",
        "the eigenbasis [V, K] needs a static K (its last dim): the filter has K rows",
    ),
    Bad(
        "identity-of-non-square",
        "  - add_identity:\n    in: sets\n",
        "13:5",
        "add_identity layer 'add_identity_0': expects square matrices [..., K, K] with a static K, got [N, M, 3]",
    ),
    Bad(
        "tnet-on-points-last",
        "  - tnet: {k: 3}\n    in: points_last\n",
        "tnet:24:13",
        "conv1d layer 'tnet_0.conv1': the channel dim must be static, got [N, P, 3]",
    ),
    Bad(
        "transform-of-another-size",
        "  - tnet: {k: 4}\n    in: cloud\n    id: t\n  - apply_transform:\n    in: [cloud, t]\n",
        "apply_transform:54:9",
        "matmul: inner dims differ: float32[N, 4, 4] @ float32[N, 3, P] (4 vs 3)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_set_spec_is_a_located_error_naming_the_shapes(case: Bad, tmp_path) -> None:
    path = tmp_path / f"{case.name}.yaml"
    path.write_text(HEADER + case.layers)
    result = run_cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    template, line, column = ([None, *case.location.split(":")])[-3:]
    if template is not None:  # inside a template: located there, and its use in the spec
        location = f"{TEMPLATES}:{line}:{column}"
        assert f"note: in template '{template}' used at {path}:" in result.stderr, result.stderr
    else:
        location = f"{path}:{line}:{column}"
    assert f"{location}: error" in result.stderr, result.stderr
    assert case.message in result.stderr, result.stderr

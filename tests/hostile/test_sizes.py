"""Hostile sizes and deep models (`size_cases.py`), through the `dlc` command under the
hostile-input harness's time and memory caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.harness import Case, check_case, plant, run_case, snapshot
from tests.hostile.size_cases import SIZE_CASES


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SIZE_CASES])
def test_hostile_size_gets_a_clean_answer(case: Case, tmp_path: Path) -> None:
    plant(case, tmp_path)
    before = snapshot(tmp_path)
    outcome = run_case(case, tmp_path)
    check_case(case, outcome, before, snapshot(tmp_path))


def test_size_case_names_are_unique() -> None:
    names = [case.name for case in SIZE_CASES]
    assert len(names) == len(set(names))

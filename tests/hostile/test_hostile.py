"""Every hostile input of `cases.py`, through the `dlc` command under time and memory caps."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.cases import CASES
from tests.hostile.harness import Case, check_case, check_outputs, plant, run_case, snapshot


def _marks(case: Case) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(reason=case.todo, strict=False)] if case.todo else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=_marks(c)) for c in CASES])
def test_hostile_input_gets_a_clean_answer(case: Case, tmp_path: Path) -> None:
    plant(case, tmp_path)
    before = snapshot(tmp_path)
    outcome = run_case(case, tmp_path)
    check_case(case, outcome, before, snapshot(tmp_path))
    check_outputs(case, outcome, tmp_path)


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))

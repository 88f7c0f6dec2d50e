"""Where torchvision cannot be installed, the reference tests skip with the reason, or,
under DLC_REQUIRE_REFERENCES=1 (CI), fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.references.torchvision_site import site_folder, torchvision_version


def test_torchvision_pairs_with_the_installed_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("DLC_TORCHVISION_VERSION", raising=False)
    minor = int(torch.__version__.split(".")[1])
    assert torchvision_version() == f"0.{minor + 15}.0"  # torch 2.13 -> torchvision 0.28.0


@pytest.mark.parametrize(
    ("required", "outcome"), [("0", pytest.skip.Exception), ("1", pytest.fail.Exception)]
)
def test_an_impossible_install_skips_or_fails_with_the_reason(
    required: str, outcome: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLC_TORCHVISION_DIR", str(tmp_path / "torchvision"))
    monkeypatch.setenv("DLC_TORCHVISION_VERSION", "0.0.0")  # no such release
    monkeypatch.setenv("DLC_REQUIRE_REFERENCES", required)
    with pytest.raises(outcome, match=r"cannot install torchvision 0\.0\.0"):
        site_folder()
    assert not (tmp_path / "torchvision").exists()

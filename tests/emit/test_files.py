"""Publishing a staged file: atomic, the old file's other links untouched, nothing but files
replaced, with or without the Linux name swap (`move_into_place`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlc.emit import files
from dlc.emit.files import move_into_place, publish
from dlc.errors import EmitError


def can_swap(directory: Path) -> bool:
    first, second = directory / "probe-a", directory / "probe-b"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    try:
        return files._exchange(first, second)
    finally:
        first.unlink()
        second.unlink()


@pytest.fixture(params=["swap", "os.replace"])
def mode(request, monkeypatch, tmp_path):
    if request.param == "swap":
        if not can_swap(tmp_path):
            pytest.skip("this system or file system cannot swap two names (renameat2 RENAME_EXCHANGE)")
    else:
        monkeypatch.setattr(files, "_renameat2", lambda: None)
    return request.param


def test_publishing_over_a_file_replaces_it_and_leaves_its_other_links_alone(tmp_path, mode):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    other_link = tmp_path / "kept.onnx"
    os.link(target, other_link)
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = staging / "model.onnx"
    staged.write_bytes(b"new model")

    assert publish(staged, target) == target

    assert target.read_bytes() == b"new model"
    assert other_link.read_bytes() == b"old model"
    assert os.stat(other_link).st_nlink == 1  # the replaced name's link to the old file is gone
    assert list(staging.iterdir()) == []


def test_publishing_to_a_new_path_moves_the_file(tmp_path, mode):
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"new model")
    target = tmp_path / "model.onnx"
    publish(staged, target)
    assert target.read_bytes() == b"new model" and not staged.exists()


def test_a_swap_uses_no_rename_over_the_old_file(tmp_path, monkeypatch):
    if not can_swap(tmp_path):
        pytest.skip("this system or file system cannot swap two names")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"new model")

    def refuse(*args):
        raise AssertionError("os.replace was called although the names could be swapped")

    monkeypatch.setattr(files.os, "replace", refuse)
    move_into_place(staged, target)
    assert target.read_bytes() == b"new model" and not staged.exists()


def test_a_directory_that_appears_at_the_target_is_swapped_back_not_deleted(tmp_path, mode):
    # publish checks the target first; this is a directory made there after that check
    target = tmp_path / "model.onnx"
    target.mkdir()
    (target / "precious").write_bytes(b"user data")
    staging = tmp_path / "staging"
    staging.mkdir()
    staged = staging / "model.onnx"
    staged.write_bytes(b"new model")

    with pytest.raises(OSError):
        move_into_place(staged, target)

    assert (target / "precious").read_bytes() == b"user data"
    assert staged.read_bytes() == b"new model"


def test_publishing_over_a_directory_is_a_located_error(tmp_path, mode):
    target = tmp_path / "model.onnx"
    target.mkdir()
    staged = tmp_path / "staged.onnx"
    staged.write_bytes(b"new model")
    with pytest.raises(EmitError, match=r"model\.onnx: it is not a regular file \(a directory\)"):
        publish(staged, target)
    assert target.is_dir()

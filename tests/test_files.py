"""Atomic writing (:mod:`gradcam_core.files`): a target is replaced only when writing completes,
an interrupted write leaves the old file and no temporary file behind."""

from __future__ import annotations

import pytest

from gradcam_core import files


def test_interrupted_text_write_leaves_the_old_file_and_nothing_else(tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), files.atomic_file(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    with files.atomic_file(target) as handle:
        handle.write("new\r\n")
        assert target.read_text() == "old"  # renamed only when the block completes
    assert target.read_bytes() == b"new\r\n"  # line endings as written


def test_binary_write_and_missing_folders(tmp_path):
    target = tmp_path / "a" / "b" / "weights.pt"
    with files.atomic_file(target, "wb") as handle:
        handle.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01" and [p.name for p in target.parent.iterdir()] == ["weights.pt"]


def test_atomic_path_is_beside_the_target_and_removed_on_failure(tmp_path):
    target = tmp_path / "file.csv"
    with pytest.raises(ValueError, match="unverified"), files.atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".file.csv.")
        temporary.write_text("bytes that fail a check")
        raise ValueError("unverified")
    assert list(tmp_path.iterdir()) == []


def test_only_text_or_binary_writing():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"), files.atomic_file("x", "a"):
        pass

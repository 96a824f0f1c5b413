"""Atomic writes: the target holds the old or the new content, never a torn one."""

import os

import pytest

from aimscale.atomic import atomic_write, atomic_write_json, is_temp_file, remove_temp_files
from aimscale.jsonfiles import read_json


def test_json_round_trip_and_mode(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert read_json(path) == {"x": 1}
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"x": 1})

    def explode(handle):
        handle.write(b'{"x": 2')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert read_json(path) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_nan_is_refused(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "a.json", {"x": float("nan")})


def test_read_json_missing(tmp_path):
    assert read_json(tmp_path / "nope.json", default={}) == {}
    (tmp_path / "file").write_text("x")
    assert read_json(tmp_path / "file" / "a.json") is None


def test_temp_files_of_killed_writes_are_recognised_and_removed(tmp_path):
    seen = []

    def look(handle):  # mid-write: the temp file exists beside the target
        seen.extend(p.name for p in tmp_path.iterdir())
        handle.write(b"{}")

    atomic_write(tmp_path / "status.json", look)
    (temp_name,) = seen
    assert is_temp_file(temp_name)
    assert not any(map(is_temp_file, ["status.json", ".lock", "notes.tmp", ".x.tmp"]))
    (tmp_path / temp_name).write_bytes(b"partial")  # as a kill mid-write leaves it
    (tmp_path / "notes.tmp").write_text("mine")
    assert remove_temp_files(tmp_path) == [tmp_path / temp_name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tmp", "status.json"]

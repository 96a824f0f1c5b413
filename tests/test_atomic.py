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


def test_temp_dirs_of_killed_directory_writes_are_removed(tmp_path):
    """A sharded checkpoint is written into `make_temp_dir`'s directory, then renamed; a kill
    before the rename leaves that directory, which `remove_temp_files` deletes with its files."""
    from aimscale.atomic import make_temp_dir, replace_dir

    target = tmp_path / "step_00000004.dcp"
    done = make_temp_dir(target)
    (done / "shard").write_bytes(b"1")
    replace_dir(done, target)
    torn = make_temp_dir(tmp_path / "step_00000008.dcp")
    assert is_temp_file(torn.name) and torn.parent == tmp_path
    (torn / "shard").write_bytes(b"partial")
    assert remove_temp_files(tmp_path) == [torn]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target / "shard").read_bytes() == b"1"
    again = make_temp_dir(target)  # replacing an existing directory
    (again / "shard").write_bytes(b"2")
    replace_dir(again, target)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert (target / "shard").read_bytes() == b"2"

"""The one JSON / JSON-lines reader and its damage policy."""

import pytest

from aimscale.jsonfiles import (
    UnreadableFileError,
    read_json,
    read_jsonl,
    read_jsonl_tail,
    trim_torn_tail,
)


def test_read_json_missing_empty_torn(tmp_path):
    assert read_json(tmp_path / "absent.json", default={"x": 1}) == {"x": 1}
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty.json: is empty"):
        read_json(tmp_path / "empty.json")
    (tmp_path / "torn.json").write_text('{"a": 1, "b"')
    with pytest.raises(UnreadableFileError, match="torn.json: is not valid JSON"):
        read_json(tmp_path / "torn.json")
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json") == {"a": 1}


def test_read_jsonl_ignores_torn_tail_and_names_corrupt_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}\ngarbage\n{"step": 3}\n')
    with pytest.raises(UnreadableFileError) as info:
        read_jsonl(path)
    assert info.value.line == 2 and "m.jsonl, line 2" in str(info.value)
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_tail_skips_partial_first_piece(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(f'{{"step": {i}, "loss": {i / 10}}}\n' for i in range(1000)))
    rows = read_jsonl_tail(path, max_bytes=100)
    assert rows and rows[-1]["step"] == 999 and all("loss" in r for r in rows)


def test_trim_torn_tail(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"st')
    assert trim_torn_tail(path) == 4
    assert path.read_text() == '{"step": 1}\n'
    assert trim_torn_tail(path) == 0

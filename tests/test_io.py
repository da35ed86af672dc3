"""JSON-lines reading: every bad line is named by file and line, undecodable bytes included."""

import pytest

from capcurriculum.io import DataError, read_jsonl


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": "caf\xe9"}\n{"a": 3}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(e.value).startswith(f"{path}:3: not valid UTF-8")
    assert (e.value.path, e.value.line) == (str(path), 3)
    assert "byte 11 of the line" in str(e.value)  # the é in Latin-1, counted from 1


def test_a_dangling_reason_does_not_read_at_at(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"a": 1}\n{"a": "unterminated', encoding="utf-8")  # a last line cut short
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert str(e.value) == f"{path}:2: malformed JSON (Unterminated string starting at column 7)"


def test_utf8_text_crlf_ends_and_blank_lines_read_as_before(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"a": "café"}\r\n\n{"b": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": "café"}, {"b": 2}]

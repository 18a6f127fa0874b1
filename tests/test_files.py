import os

import pytest

from longtail.files import write_atomic


def test_write_atomic_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "results.json"
    write_atomic(target, "old\n")
    write_atomic(target, b"new\n")
    assert target.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["results.json"]
    (tmp_path / "plain.txt").write_text("")  # the permissions a plain open gives (umask applied)
    assert os.stat(target).st_mode == os.stat(tmp_path / "plain.txt").st_mode


def test_write_atomic_keeps_the_last_whole_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_atomic(target, "whole\n")
    with pytest.raises(TypeError):
        write_atomic(target, 123)  # fails mid-write: the temporary file is removed, the target kept
    assert target.read_text() == "whole\n"
    assert os.listdir(tmp_path) == ["metrics.json"]

"""What a command says when a file or the store fails: one sentence, the store's or naming the file."""

import errno
import os

from cardloop.store.root import file_problem


def test_an_error_about_a_file_outside_the_store_names_that_file(tmp_path):
    error = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "model.safetensors"))
    assert str(file_problem(error, tmp_path / "store")) == \
        f"cannot use {tmp_path / 'model.safetensors'}: Permission denied"


def test_an_error_about_a_file_inside_the_store_is_the_stores(tmp_path):
    error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "store" / "artifacts" / "ab" / "x"))
    assert str(file_problem(error, tmp_path / "store")).startswith(f"store '{tmp_path / 'store'}' is out of disk "
                                                                   "space (No space left on device: ")


def test_a_full_disk_that_names_no_file_is_the_stores(tmp_path):
    problem = file_problem(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), tmp_path)
    assert "is out of disk space" in str(problem) and "free some space" in str(problem)


def test_an_error_that_is_no_file_or_database_error_is_left_to_the_caller(tmp_path):
    assert file_problem(ValueError("not a file error"), tmp_path) is None

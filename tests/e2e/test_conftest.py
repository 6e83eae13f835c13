"""tests/e2e/conftest.py: a test run whose browser tests were skipped ends by saying so. Each test runs a real
pytest process over a copy of that conftest beside a browser test that skips or passes, and another test."""

import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).resolve().parent / "conftest.py"
MISSING = "/usr/bin/chromium is missing: install Debian's chromium package to run the browser tests"


def run_suite(tmp_path, browser_test, other_test="pass"):
    """The output of pytest over tmp_path: e2e/ holds the conftest and a test running `browser_test`, other/ a
    test running `other_test`."""
    for folder, statement in (("e2e", browser_test), ("other", other_test)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"test_{folder}.py").write_text(f"import pytest\n\n\ndef test_it():\n    {statement}\n")
    shutil.copy(CONFTEST, tmp_path / "e2e" / "conftest.py")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "--rootdir",
                             str(tmp_path), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()


def test_skipped_browser_tests_are_named_at_the_end_with_how_to_install_them(tmp_path):
    lines = run_suite(tmp_path, f"pytest.skip({MISSING!r})")
    assert "1 browser test(s) did not run" in lines[-4]
    assert lines[-3].strip() == MISSING
    assert "apt-get install chromium" in lines[-2] and "pip install -e '.[test]'" in lines[-2]
    assert "1 passed, 1 skipped" in lines[-1]


def test_a_run_whose_browser_tests_ran_says_nothing_of_the_browser(tmp_path):
    lines = run_suite(tmp_path, "pass")
    assert not any("did not run" in line for line in lines) and "2 passed" in lines[-1]


def test_other_skipped_tests_are_not_reported_as_browser_tests(tmp_path):
    lines = run_suite(tmp_path, "pass", other_test="pytest.skip('not here')")
    assert not any("did not run" in line for line in lines) and "1 passed, 1 skipped" in lines[-1]

"""The browser tests' report: when they could not run (no Chromium, no playwright package), the end of the test
run says so plainly, instead of one skipped line among many. With CI set, tests/e2e/test_editor.py fails instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
INSTALL = ("to run them, install Debian's chromium package (apt-get install chromium; .ci/run does) and the test "
           "extras (pip install -e '.[test]')")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> Any:
    """After every other summary (pytest's short summary included), just above the final count."""
    result = yield
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if HERE in (config.rootpath / report.fspath).resolve().parents]
    if not skipped:
        return result
    terminalreporter.write_sep("!", f"{len(skipped)} browser test(s) did not run", red=True, bold=True)
    for reason in sorted({_reason(report) for report in skipped}):
        terminalreporter.write_line(f"  {reason}")
    terminalreporter.write_line(f"  {INSTALL}")
    return result


def _reason(report: Any) -> str:
    """A skip's reason, without pytest's 'Skipped: ' prefix."""
    longrepr = report.longrepr
    return longrepr[2].removeprefix("Skipped: ") if isinstance(longrepr, tuple) else str(longrepr)

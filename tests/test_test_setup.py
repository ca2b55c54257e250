"""The test suite's own switches: a misspelt REQUIRE_DB_BACKENDS fails the run instead of
requiring nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import PROJECT_ROOT

ONE_QUICK_TEST = "tests/test_settings.py::test_single_workspace_mode"


def run_pytest(required: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REQUIRE_DB_BACKENDS": required}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_QUICK_TEST],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_unknown_backend_names_fail_the_run() -> None:
    for required in ("postgres,mysql", "postgresql,mysql", "PostgreSQL"):
        result = run_pytest(required)
        assert result.returncode != 0, (required, result.stdout[-500:])
        output = result.stdout + result.stderr
        assert "REQUIRE_DB_BACKENDS names unknown backend(s)" in output, output[-500:]
        assert "sqlite, postgresql, mariadb" in output
    # The right names (and SQLite, always there) pass the check.
    result = run_pytest("sqlite")
    assert result.returncode == 0, result.stdout[-500:] + result.stderr[-500:]

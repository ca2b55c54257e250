"""Helpers for the task queue tests: worker processes, replies, the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from slack_standin import SlackStandIn
from slack_standin.harness import WorkerProcess  # noqa: F401 - re-exported for the tests
from tests.support import PROJECT_ROOT


def replies(standin: SlackStandIn, team_id: str | None = None) -> list:
    """Replies posted (chat.postMessage answered ok), optionally in one workspace."""
    return [c for c in standin.calls_for("chat.postMessage") if c.ok and (team_id is None or c.team_id == team_id)]


def replies_per_thread(standin: SlackStandIn) -> Counter:
    """How many replies each mention (its thread: team, ts) got."""
    return Counter((c.team_id, c.params.get("thread_ts")) for c in replies(standin))


def run_cli(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_", "TASK_QUEUE"))}, **env}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "main.py"), *args], env=full, cwd=cwd,
                          capture_output=True, text=True, timeout=60)

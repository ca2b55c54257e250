"""Helpers for the task queue tests: worker processes, the queue as the test sees it, replies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from slack_standin import SlackStandIn
from tests.support import PROJECT_ROOT


class WorkerProcess:
    """`python main.py worker` as a subprocess; ready once it logged so."""

    def __init__(self, *, env: dict[str, str], workdir: Path, name: str):
        self.log_path = Path(workdir) / f"{name}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_", "TASK_QUEUE"))},
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "WORKER_THREADS": "4",
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> "WorkerProcess":
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "main.py"), "worker"],
                                        cwd=self.log_path.parent, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.logs()}")
            if "Worker ready" in self.logs():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not get ready:\n{self.logs()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no goodbye to Redis, its jobs in hand stay unacknowledged."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 40) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


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

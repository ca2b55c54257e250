"""A start that says only what an operator needs, and leaves nothing behind but the database:
no Bolt token warning, no Alembic set-up lines, no lock file, `git status` clean; and the
package imports where `fcntl` does not exist (Windows)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from bolt_app import database
from slack_standin import SlackStandIn
from slack_standin.harness import AppProcess, app_env
from tests.socket_mode.conftest import single_workspace_bot_token
from tests.support import PROJECT_ROOT, settings_for

NOISE = ("As you gave `client` as well", "alembic.runtime", "setup plugin", "Context impl", "Control socket")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_running_the_app_leaves_git_status_clean_and_the_log_quiet(standin: SlackStandIn, tmp_path: Path) -> None:
    # A clone's root, reduced to what matters: the repository's .gitignore, committed.
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(PROJECT_ROOT / ".gitignore", clone / ".gitignore")
    git(clone, "init", "-q")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".gitignore")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    # The defaults a newcomer runs with: SQLite in the working directory, the key file beside it.
    env = {k: v for k, v in app_env(standin, "").items() if k not in ("DATABASE_URL", "SLACK_TOKEN_ENCRYPTION_KEYS")}
    server = AppProcess(env=env, workdir=tmp_path, cwd=clone)
    try:
        server.start()
    finally:
        assert server.stop() == 0, server.logs()
    # The database (with SQLite's own -wal/-shm) and its key file, all git-ignored; no lock file.
    left = {p.name for p in clone.iterdir()} - {".git", ".gitignore", "slack_app.db-wal", "slack_app.db-shm"}
    assert left == {"slack_app.db", "slack_app.db.key"}
    assert git(clone, "status", "--porcelain", "--untracked-files=all") == ""
    log = server.logs()
    assert "Database schema upgraded from empty" in log
    for noise in NOISE:
        assert noise not in log, noise


def test_single_workspace_app_builds_without_the_token_warning(standin: SlackStandIn, sqlite_url: str, caplog) -> None:
    from bolt_app.app import create_app

    ws = standin.create_workspace(name="Solo")
    token = single_workspace_bot_token(standin, ws.team_id)
    settings = settings_for(standin, sqlite_url, SLACK_CLIENT_ID="", SLACK_CLIENT_SECRET="", SLACK_BOT_TOKEN=token)
    engine = database.create_engine(sqlite_url, pool_size=1)
    database.upgrade(engine)
    with caplog.at_level(logging.WARNING):
        app = create_app(settings, engine=engine)
    assert app.client.token == token
    assert not [r for r in caplog.records if "will be unused" in r.getMessage()]
    engine.dispose()


def test_the_sqlite_migration_lock_leaves_no_file(tmp_path: Path) -> None:
    engine = database.create_engine(f"sqlite:///{tmp_path / 'app.db'}", pool_size=1)
    database.upgrade(engine)
    database.upgrade(engine)
    engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


LOCK_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from bolt_app.database import file_lock
    lock, record = Path(sys.argv[1]), Path(sys.argv[2])
    for _ in range(25):
        with file_lock(lock):
            with open(record, "a") as out:
                out.write(f"in {os.getpid()}\\n")
                out.flush()
                time.sleep(0.002)
                out.write(f"out {os.getpid()}\\n")
    """
)


def test_file_lock_excludes_other_processes_although_each_holder_deletes_the_file(tmp_path: Path) -> None:
    lock, record = tmp_path / "x.migrate-lock", tmp_path / "record"
    workers = [
        subprocess.Popen([sys.executable, "-c", LOCK_WORKER, str(lock), str(record)], cwd=PROJECT_ROOT)
        for _ in range(4)
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    lines = record.read_text().splitlines()
    assert len(lines) == 4 * 25 * 2
    for entered, left in zip(lines[::2], lines[1::2]):  # never two holders at once
        assert entered.split()[0] == "in" and left == "out " + entered.split()[1]
    assert not lock.exists()


WITHOUT_FCNTL = textwrap.dedent(
    """
    import sys, types
    sys.modules["fcntl"] = None  # as on Windows
    import bolt_app.app, bolt_app.cli, bolt_app.cli_hooks, bolt_app.database, bolt_app.web, slack_standin.sandbox
    # Then msvcrt's locking, recorded (installed late: the standard library takes msvcrt for Windows).
    calls = []
    fake = types.ModuleType("msvcrt")
    fake.LK_LOCK, fake.LK_NBLCK, fake.LK_UNLCK = 1, 2, 0
    fake.locking = lambda fd, mode, size: calls.append(mode)
    sys.modules["msvcrt"] = fake
    from pathlib import Path
    from bolt_app.database import file_lock
    with file_lock(Path(sys.argv[1])):
        pass
    assert calls == [1, 0], calls
    assert slack_standin.sandbox._try_lock(open(sys.argv[1] + ".2", "w"))
    print("ok")
    """
)


def test_the_package_imports_and_locks_without_fcntl(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_FCNTL, str(tmp_path / "lock")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr

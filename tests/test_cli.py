"""The command line: schema management under concurrency, admin views, token refresh for cron."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from bolt_app import database
from bolt_app.app import create_app
from tests.support import PROJECT_ROOT, AppServer, base_env, install_direct, settings_for


def run_main(env: dict[str, str], *args: str, cwd=None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd or PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrations_are_safe_from_many_processes_at_once(db_url, standin, tmp_path) -> None:
    env = base_env(standin, db_url)
    if not db_url.startswith("sqlite"):
        # A server database is never migrated implicitly: start-up refuses with the fix.
        refused = run_main({**env, "PORT": "0"}, cwd=tmp_path)
        assert refused.returncode == 3, refused.stderr
        assert "python main.py db upgrade" in refused.stderr
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: run_main(env, "db", "upgrade", cwd=tmp_path), range(4)))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    engine = database.create_engine(db_url, pool_size=1)
    assert database.current_revision(engine) == database.head_revision()
    engine.dispose()


def test_fresh_sqlite_with_many_workers_and_two_servers_at_once_boots_cleanly(standin, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    servers = [
        AppServer(standin=standin, database_url=url, workdir=tmp_path, extra_env={"WEB_CONCURRENCY": "4"})
        for _ in range(2)
    ]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda server: server.start(timeout=60), servers))
        for server in servers:
            assert "Worker failed to boot" not in server.logs()
    finally:
        for server in servers:
            assert server.stop() == 0


@pytest.fixture
def installed(standin, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    engine = database.create_engine(url, pool_size=2)
    database.upgrade(engine)
    app = create_app(settings_for(standin, url), engine=engine)
    workspaces = [standin.create_workspace(name=f"Team {n}") for n in range(2)]
    for ws in workspaces:
        install_direct(app, standin, ws.team_id)
    yield base_env(standin, url), workspaces, engine
    engine.dispose()


def test_installations_list_and_show_never_print_tokens(installed, standin) -> None:
    env, workspaces, _ = installed
    listing = run_main(env, "installations", "list")
    assert listing.returncode == 0, listing.stderr
    for ws in workspaces:
        assert ws.team_id in listing.stdout and ws.name in listing.stdout
    assert "2 installation(s)" in listing.stdout and " ok" in listing.stdout
    shown = run_main(env, "installations", "show", workspaces[0].team_id)
    assert shown.returncode == 0 and "Bot token:        present, rotating: yes" in shown.stdout
    assert run_main(env, "installations", "show", "T-NOPE").returncode == 1
    for output in (listing.stdout + listing.stderr, shown.stdout + shown.stderr):
        assert "xox" not in output


def test_tokens_refresh_for_cron(installed, standin) -> None:
    env, workspaces, engine = installed
    standin.clear_calls()
    nothing_due = run_main(env, "tokens", "refresh", "--within", "60")
    assert nothing_due.returncode == 0 and "0 refreshed" in nothing_due.stdout

    everything = run_main(env, "tokens", "refresh", "--within", "1440")
    assert everything.returncode == 0, everything.stderr
    assert "2 refreshed" in everything.stdout
    assert all(ws.team_id in everything.stdout for ws in workspaces)
    assert len([c for c in standin.calls_for("oauth.v2.access") if c.ok]) == 2

    standin.revoke_refresh_tokens(workspaces[1].team_id)
    failing = run_main(env, "tokens", "refresh", "--within", "1440")
    assert failing.returncode == 1
    assert "1 refreshed, 1 need reinstall" in failing.stdout
    listing = run_main(env, "installations", "list")
    assert "needs_reinstall" in listing.stdout

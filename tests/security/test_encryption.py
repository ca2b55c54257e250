"""Tokens encrypted at rest: raw rows hold no token, keys rotate without losing an installation,
a wrong key fails loudly, migration 0003 encrypts existing plaintext rows, the `keys` commands."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Installation

from bolt_app import database, keys
from bolt_app.storage import crypto, tables
from bolt_app.storage.tables import to_db_time, workspace_key
from tests.security.support import issued_tokens, iter_strings, raw_rows, start_live_app
from tests.support import PROJECT_ROOT, TEST_ENCRYPTION_KEY, AppServer, base_env, install, wait_for

NEW_KEY = "ZpVdhm0E-rrrrC2LDUUvHeF6BmtBerTrAPmxSL2_q50="
WRONG_KEY = "q5a4mGQ3hmtGVPXSu4VQ0Xe1n9GkU-OMlMSCnPEw3aU="


SLACK_TOKEN_SHAPE = re.compile(r"xox[a-z]?[.-]")


def token_values(engine) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(table, column, raw value) of every non-NULL token column."""
    out = []
    for name, rows in raw_rows(engine).items():
        for column in crypto.TOKEN_COLUMNS.get(name, ()):
            out += [(name, column, row[column]) for row in rows if row[column] is not None]
    return out


def replies(standin, team_id: str):  # type: ignore[no-untyped-def]
    return [c for c in standin.calls_for("chat.postMessage") if c.team_id == team_id and c.ok]


def mention_is_answered(standin, ws) -> bool:  # type: ignore[no-untyped-def]
    standin.clear_calls()
    if standin.send_mention(ws, "are you there?").status != 200:
        return False
    return bool(wait_for(lambda: replies(standin, ws.team_id)))


def expire_everything(engine, standin) -> None:  # type: ignore[no-untyped-def]
    standin.expire_tokens()
    with engine.begin() as conn:
        conn.execute(tables.bots.update().values(bot_token_expires_at=to_db_time(time.time() - 60)))


def test_raw_rows_hold_no_token_after_installs_and_rotation(live_app, standin) -> None:
    teams = [standin.create_workspace(name=f"Secret {n}") for n in range(2)]
    for ws in teams:
        assert install(live_app.url, standin, ws.team_id).response.status == 200
    # Rotation writes tokens too: expire everything and let the next event refresh.
    expire_everything(live_app.engine, standin)
    standin.clear_calls()
    for ws in teams:
        assert standin.send_mention(ws, "rotate please").status == 200
        assert wait_for(lambda ws=ws: replies(standin, ws.team_id))
    refreshes = [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
    assert len(refreshes) == len(teams)
    # An incoming webhook URL is a credential too.
    webhook = "https://hooks.slack.com/services/T0HOOK/B0HOOK/very-secret-webhook-path"
    live_app.app.installation_store.save(Installation(
        app_id="A0APP", team_id="T0HOOK", user_id="U0HOOK", bot_token="xoxb-1-hook-bot-token", bot_id="B0HOOK",
        bot_user_id="U0HOOKBOT", incoming_webhook_url=webhook, user_token="xoxp-1-hook-user-token",
    ))

    secrets = issued_tokens(standin) + [webhook, "xoxb-1-hook-bot-token", "xoxp-1-hook-user-token"]
    assert len(secrets) >= 4 * len(teams)
    assert all(SLACK_TOKEN_SHAPE.search(secret) for secret in secrets if secret.startswith("xox"))
    everything = [value for rows in raw_rows(live_app.engine).values() for row in rows for value in iter_strings(row)]
    for value in everything:
        # A Slack token's shape (xoxb-, xoxp-, xoxe.xoxp-, xoxe-, …), not the bare letters "xox",
        # which a Fernet token's base64 holds by chance in about one value of a thousand.
        assert not SLACK_TOKEN_SHAPE.search(value) and "hooks.slack.com" not in value, value[:40]
        for secret in secrets:
            assert secret not in value
    stored = token_values(live_app.engine)
    assert {column for _, column, _ in stored} == {
        "bot_token", "bot_refresh_token", "user_token", "user_refresh_token", "incoming_webhook_url"}
    assert all(crypto.looks_encrypted(value) for _, _, value in stored)
    # ...and the stores read them back as the tokens.
    hook = live_app.app.installation_store.find_installation(enterprise_id=None, team_id="T0HOOK")
    assert hook.incoming_webhook_url == webhook and hook.user_token == "xoxp-1-hook-user-token"


def test_rotating_keys_keeps_every_installation_usable(live_app, standin, db_url) -> None:
    teams = [standin.create_workspace(name=f"Rotate {n}") for n in range(3)]
    for ws in teams:
        assert install(live_app.url, standin, ws.team_id).response.status == 200
    rows = sum(len(r) for name, r in raw_rows(live_app.engine).items() if name in crypto.TOKEN_COLUMNS)
    both = crypto.Keyring([NEW_KEY, TEST_ENCRYPTION_KEY])

    # An interrupted run (here: after the second row) ...
    seen: list[int] = []

    def interrupt(table: str, row_id: int) -> None:
        seen.append(row_id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        keys.rotate(live_app.engine, both, lines.append, row_hook=interrupt)
    # ... resumes: what was done is skipped, the rest is re-encrypted.
    summary = keys.rotate(live_app.engine, both, lines.append)
    assert (summary.reencrypted, summary.already_current, summary.failed) == (rows - 2, 2, 0)
    assert any("slack_bots: 3/3 checked" in line for line in lines)
    again = keys.rotate(live_app.engine, both)
    assert (again.reencrypted, again.already_current) == (0, rows)
    only_new = crypto.Keyring([NEW_KEY])
    for table, column, value in token_values(live_app.engine):
        assert only_new.is_current(value), (table, column)

    # The old key removed: every installation still serves.
    live_app.server.stop()
    fresh = start_live_app(standin, db_url, SLACK_TOKEN_ENCRYPTION_KEYS=NEW_KEY)
    try:
        for ws in teams:
            assert mention_is_answered(standin, ws)
    finally:
        fresh.server.stop()
        fresh.engine.dispose()


def test_rotation_never_overwrites_a_token_written_meanwhile(engine) -> None:
    """The unlocked scan saw an old value; the app rotates the token before the row is locked:
    the re-read under the lock sees the new value and leaves it."""
    from bolt_app.storage.installation_store import InstallationStore

    store = InstallationStore(client_id="1111.2222", engine=engine)
    store.save(Installation(app_id="A1", team_id="T1", user_id="U1", bot_token="xoxb-1-old", bot_id="B1",
                            bot_user_id="U1BOT", user_token="xoxp-1-user"))
    both = crypto.Keyring([NEW_KEY, TEST_ENCRYPTION_KEY])
    crypto.bind(engine, both)  # the app, rolled out with the new key first

    def app_rotates_meanwhile(table: str, row_id: int) -> None:
        bot = store.find_bot(enterprise_id=None, team_id="T1")
        bot.bot_token = f"xoxb-1-new-{table}"
        store.save_bot(bot)

    keys.rotate(engine, both, row_hook=app_rotates_meanwhile)
    bot = store.find_bot(enterprise_id=None, team_id="T1")
    installation = store.find_installation(enterprise_id=None, team_id="T1")
    assert bot.bot_token == "xoxb-1-new-slack_installations"
    assert installation.bot_token == "xoxb-1-new-slack_installations" and installation.user_token == "xoxp-1-user"
    assert all(crypto.Keyring([NEW_KEY]).is_current(v) for _, _, v in token_values(engine))


def test_a_wrong_key_fails_loudly_and_never_yields_garbage(live_app, standin, db_url, tmp_path) -> None:
    ws = standin.create_workspace(name="Wrong Key Co")
    assert install(live_app.url, standin, ws.team_id).response.status == 200
    live_app.server.stop()

    # The stores: a clear error naming the problem, never a token-looking value.
    wrong = database.create_engine(db_url, pool_size=1)
    crypto.bind(wrong, crypto.Keyring([WRONG_KEY]))
    from bolt_app.storage.installation_store import InstallationStore

    with pytest.raises(crypto.TokenDecryptionError) as info:
        InstallationStore(client_id="1111.2222", engine=wrong).find_bot(enterprise_id=None, team_id=ws.team_id)
    message = str(info.value)
    assert "could not be decrypted" in message and "SLACK_TOKEN_ENCRYPTION_KEYS" in message
    assert WRONG_KEY not in message and TEST_ENCRYPTION_KEY not in message
    wrong.dispose()

    # A running app with the wrong key: events are answered 503 (Slack retries), not processed.
    bad = start_live_app(standin, db_url, SLACK_TOKEN_ENCRYPTION_KEYS=WRONG_KEY)
    try:
        standin.clear_calls()
        assert standin.send_mention(ws, "hello?").status == 503
        assert standin.calls_for("chat.postMessage") == []
    finally:
        bad.server.stop()
        bad.engine.dispose()

    # Start-up refuses with one clear message (before any worker starts).
    env = {**base_env(standin, db_url), "SLACK_TOKEN_ENCRYPTION_KEYS": WRONG_KEY, "PATH": os.environ["PATH"],
           "DATABASE_AUTO_MIGRATE": "false"}
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "main.py")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "could not be decrypted" in result.stderr
    assert WRONG_KEY not in result.stderr + result.stdout


def _insert_plaintext(conn, n: int, team: str, webhook: str | None = None) -> None:  # type: ignore[no-untyped-def]
    now = to_db_time(time.time())
    common = dict(client_id="1111.2222", app_id="A1", workspace_key=workspace_key(None, team), team_id=team,
                  bot_token=f"xoxb-plain-{n}", bot_id="B1", bot_user_id="UB1", bot_refresh_token=f"xoxe-1-plain-{n}",
                  is_enterprise_install=False, installed_at=now, updated_at=now, status="ok")
    conn.execute(sa.table("slack_bots", *(sa.column(k) for k in common)).insert().values(**common))
    inst = dict(common, user_id=f"U{n}", user_token=f"xoxp-plain-{n}", incoming_webhook_url=webhook)
    conn.execute(sa.table("slack_installations", *(sa.column(k) for k in inst)).insert().values(**inst))


def test_migration_0003_encrypts_existing_plaintext_rows(db_url, monkeypatch) -> None:
    engine = database.create_engine(db_url, pool_size=2)
    try:
        database.upgrade(engine, "0002")
        with engine.begin() as conn:
            _insert_plaintext(conn, 1, "T1", webhook="https://hooks.slack.com/services/T1/B1/plain")
            _insert_plaintext(conn, 2, "T2")
        plain = sorted(v for _, _, v in token_values(engine))

        # The key is taken as the app takes it: here from SLACK_TOKEN_ENCRYPTION_KEYS.
        monkeypatch.setattr(crypto, "_default", None)
        monkeypatch.setenv(crypto.KEYS_ENV, f"{NEW_KEY},{TEST_ENCRYPTION_KEY}")
        database.upgrade(engine)
        assert database.current_revision(engine) == database.head_revision()
        stored = token_values(engine)
        assert len(stored) == len(plain) and all(crypto.looks_encrypted(v) for _, _, v in stored)
        new = crypto.Keyring([NEW_KEY])
        assert sorted(new.decrypt(v) for _, _, v in stored) == plain

        # The app reads them.
        crypto.bind(engine, new)
        from bolt_app.storage.installation_store import InstallationStore

        found = InstallationStore(client_id="1111.2222", engine=engine).find_installation(enterprise_id=None, team_id="T1")
        assert found.bot_token == "xoxb-plain-1" and found.incoming_webhook_url.endswith("/plain")

        # Downgrade decrypts; upgrading again re-encrypts (and a second run changes nothing).
        database.upgrade(engine, "0003")
        from alembic import command

        command.downgrade(database._alembic_config(engine), "0002")
        assert sorted(v for _, _, v in token_values(engine)) == plain
        database.upgrade(engine)
        database.upgrade(engine)
        assert sorted(new.decrypt(v) for _, _, v in token_values(engine)) == plain
    finally:
        engine.dispose()


def test_migration_0003_without_a_key_on_a_server_database_explains(monkeypatch) -> None:
    monkeypatch.setattr(crypto, "_default", None)
    monkeypatch.delenv(crypto.KEYS_ENV, raising=False)
    from bolt_app.settings import SettingsError

    with pytest.raises(SettingsError) as info:
        crypto.keyring_from_environment("postgresql://app@db.internal/app")
    assert "SLACK_TOKEN_ENCRYPTION_KEYS is required" in str(info.value)


def run_main(env: dict[str, str], *args: str, cwd) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "main.py"), *args],
                          env={"PATH": os.environ["PATH"], **env}, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # runs main.py processes
def test_keys_generate_and_rotate_commands(standin, sqlite_url, tmp_path) -> None:
    generated = run_main({}, "keys", "generate", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    key = generated.stdout.strip()
    assert len(key) == 44 and Fernet(key.encode())  # url-safe base64 of 32 bytes

    live = start_live_app(standin, sqlite_url)
    try:
        for n in range(2):
            ws = standin.create_workspace(name=f"CLI {n}")
            assert install(live.url, standin, ws.team_id).response.status == 200
    finally:
        live.server.stop()
        live.engine.dispose()
    env = {**base_env(standin, sqlite_url), "SLACK_TOKEN_ENCRYPTION_KEYS": f"{key},{TEST_ENCRYPTION_KEY}"}
    first = run_main(env, "keys", "rotate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "slack_bots: 2/2 checked, 2 re-encrypted" in first.stdout
    assert "Done: 4 row(s) re-encrypted, 0 already under the first key, 0 failed." in first.stdout
    second = run_main(env, "keys", "rotate", cwd=tmp_path)
    assert "Done: 0 row(s) re-encrypted, 4 already under the first key" in second.stdout
    assert key not in first.stdout + first.stderr + second.stdout + second.stderr

    # A key that is not a Fernet key: named by position, never echoed.
    bad = run_main({**env, "SLACK_TOKEN_ENCRYPTION_KEYS": f"{key},not-a-key-secret-value"}, "keys", "rotate", cwd=tmp_path)
    assert bad.returncode == 2 and "position 2" in bad.stderr and "not-a-key-secret-value" not in bad.stderr


@pytest.mark.slow  # runs main.py processes
def test_server_database_without_a_key_refuses_to_start(standin, tmp_path) -> None:
    env = {**base_env(standin, "postgresql://app:pw@127.0.0.1:9/app"), "SLACK_TOKEN_ENCRYPTION_KEYS": ""}
    result = run_main(env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("The app cannot start") == 1
    assert "SLACK_TOKEN_ENCRYPTION_KEYS is required with a postgresql database" in result.stderr


@pytest.mark.slow  # runs main.py processes
def test_sqlite_without_a_key_creates_a_private_key_file_once(standin, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    key_file = tmp_path / "embedded.db.key"
    first = AppServer(standin=standin, database_url=url, workdir=tmp_path,
                      extra_env={"SLACK_TOKEN_ENCRYPTION_KEYS": ""}).start()
    try:
        ws = standin.create_workspace(name="Embedded Co")
        assert install(first.url, standin, ws.team_id).response.status == 200
        assert mention_is_answered(standin, ws)
    finally:
        first.stop()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "embedded.db").stat().st_mode) == 0o600  # the tokens beside it too
    assert first.logs().count("Created the token encryption key file") == 1
    key = key_file.read_text().strip()
    assert key not in first.logs()

    second = AppServer(standin=standin, database_url=url, workdir=tmp_path,
                       extra_env={"SLACK_TOKEN_ENCRYPTION_KEYS": ""}).start()
    try:
        assert mention_is_answered(standin, ws)  # the same key, read back
    finally:
        second.stop()
    assert "Created the token encryption key file" not in second.logs()
    engine = database.create_engine(url, pool_size=1)
    assert all(crypto.Keyring([key]).is_current(v) for _, _, v in token_values(engine))
    engine.dispose()

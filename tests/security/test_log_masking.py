"""No secret in any log line: the full flow against a real server process with DEBUG logging."""

from __future__ import annotations

import io
import logging
import re
import time
from urllib.parse import quote

import sqlalchemy as sa

from bolt_app import database
from bolt_app.logs import MaskingFormatter, mask_secrets
from bolt_app.storage import tables
from bolt_app.storage.tables import to_db_time
from tests.security.support import issued_tokens
from tests.support import (
    CLIENT_SECRET,
    SIGNING_SECRET,
    TEST_ENCRYPTION_KEY,
    Browser,
    authorize_url_from_install_page,
    install,
    query_of,
    signed_post,
    wait_for,
)

# A token-shaped string that was not masked (masked ones read "xoxb-[redacted]", "xoxe.[redacted]").
UNMASKED_TOKEN = re.compile(r"(?:xox[abpers]|xapp)(?:\.xox[abp])?-[A-Za-z0-9]")


def test_masking_covers_every_token_shape() -> None:
    samples = ["xoxb-1-2-abc", "xoxp-1-2-abc", "xoxe-1-abcdef", "xoxa-2-abc", "xapp-1-A1-2-abc", "xoxs-1-abc",
               "xoxe.xoxb-1-abcdef0123", "xoxe.xoxp-1-abcdef0123", "https://hooks.slack.com/services/T1/B1/s3cr3t"]
    for sample in samples:
        masked = mask_secrets(f"token={sample}&next=1 {sample}")
        assert sample not in masked and "[redacted]" in masked, masked
        assert not UNMASKED_TOKEN.search(masked)
    assert mask_secrets(f"a {CLIENT_SECRET} b", [CLIENT_SECRET]) == "a [redacted] b"


def test_masking_covers_oauth_codes_wherever_they_are_printed() -> None:
    code = "1234567890.1234567890.abcdef0123456789"
    for sample in (f"GET /slack/oauth_redirect?code={code}&state=s", f"?state=s&code={code}",
                   f"body_params: {{'client_id': 'x', 'code': '{code}', 'redirect_uri': None}}",
                   f'{{"code": "{code}"}}', f"code={code}"):
        masked = mask_secrets(sample)
        assert code not in masked and "[redacted]" in masked, masked
    # Other words ending in "code" are left alone.
    assert mask_secrets("error_code=42 status_code=200 zipcode=1") == "error_code=42 status_code=200 zipcode=1"


FORGED = "2024-01-01 00:00:00,000 INFO bolt_app.oauth.flow [1] Installed into enterprise_id=None team_id=TFORGED"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_a_record_never_reads_as_more_than_one() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter())
    log = logging.getLogger("tests.log_forging")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("value %s", "x\n" + FORGED)
        log.warning("value %s", "x\r" + FORGED)  # a terminal would overwrite the line
        log.warning(f"pre-formatted x\u2028{FORGED}")
        try:
            raise ValueError("bad\n" + FORGED)
        except ValueError:
            log.exception("failed on %r", "y")
        log.warning("multi-line\nmessage\x1b[31m\x00\x85end\n")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    starts = [line for line in lines if RECORD_START.match(line)]
    # Five records, five lines that start like one (the forged text starts like one too).
    assert len(starts) == 5 and not any(line.startswith("2024-01-01") for line in lines), lines
    assert all(line.startswith("  ") for line in lines if not RECORD_START.match(line)), lines
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text and "\x00" not in text and "\u2028" not in text
    assert "x\\r2024" in text and "\\x1b[31m\\x00\\x85end" in text


def test_request_values_reach_the_log_escaped(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    forged = quote("x\n" + FORGED)
    assert Browser().get(f"{server.url}/slack/oauth_redirect?error={forged}&state=s").status == 200
    assert Browser().get(f"{server.url}/slack/oauth_redirect?error={quote(chr(13))}{quote(FORGED)}").status == 200
    logs = server.logs()
    assert not [line for line in logs.splitlines() if "TFORGED" in line and RECORD_START.match(line)
                and "Installation failed" not in line], logs[-2000:]
    # As a Python literal: quoted, the newline written as \n, on the record's own line.
    assert "Installation failed: 'x\\n2024-01-01 00:00:00,000 INFO" in logs
    assert "Installation failed: '\\r2024-01-01" in logs


def test_full_flow_with_debug_logging_leaks_no_secret(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url, LOG_LEVEL="DEBUG", SLACK_USER_SCOPES="search:read")
    org = standin.create_enterprise(name="Log Org")
    member = standin.create_workspace(enterprise_id=org.enterprise_id, name="Log Org Sales")
    first, second = standin.create_workspace(name="Log One"), standin.create_workspace(name="Log Two")

    # Installs (code exchange: client secret, bot + user + refresh tokens in Slack's answer).
    installs = [install(server.url, standin, ws.team_id) for ws in (first, second)]
    installs.append(install(server.url, standin, member.team_id, org_install=True))
    assert [i.response.status for i in installs] == [200, 200, 200]
    # OAuth codes are credentials too until they are exchanged (and the exchange is logged at DEBUG).
    codes = [query_of(i.callback_url)["code"] for i in installs]
    # Failed installs: cancelled, a spent code.
    browser = Browser()
    authorize_url = authorize_url_from_install_page(browser.get(f"{server.url}/slack/install").text)
    assert browser.get(standin.cancel(authorize_url)).status == 200
    spent = install(server.url, standin, first.team_id).callback_url
    assert Browser().get(spent).status >= 400
    codes.append(query_of(spent)["code"])

    # Events with the stored tokens, then every token rotated (refresh tokens spent and issued).
    for ws in (first, second, member):
        assert standin.send_mention(ws, "hello").status == 200
    standin.expire_tokens()
    engine = database.create_engine(sqlite_url, pool_size=1)
    with engine.begin() as conn:
        past = to_db_time(time.time() - 60)
        conn.execute(tables.bots.update().values(bot_token_expires_at=past))
        conn.execute(tables.installations.update().values(user_token_expires_at=past))
    for ws in (first, second, member):
        assert standin.send_mention(ws, "after rotation").status == 200
    assert wait_for(lambda: len([c for c in standin.calls_for("chat.postMessage") if c.ok]) >= 6, timeout=20)
    assert [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]

    # Other deliveries: a slash command, an interaction, a forged request, revocation, uninstall.
    standin.send_slash_command(first, "/poll", "Lunch? pizza, tacos")
    standin.send_interactive(first, {"type": "block_actions", "actions": [{"action_id": "x", "value": "1"}]})
    assert signed_post(server.events_url, b'{"type":"event_callback"}', "application/json",
                       secret="not-the-secret").status == 401
    assert standin.send_event(second, {"type": "tokens_revoked", "tokens": {"oauth": [second.installer_user_id],
                                                                            "bot": [second.bot_user_id]}}).status == 200
    assert standin.send_event(first, {"type": "app_uninstalled"}).status == 200
    standin.uninstall(team_id=first.team_id)
    # A graceful stop lets every listener still running after its ack finish (and log) first.
    assert server.stop() == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tables.bots)).scalar() == 1  # the org's
    engine.dispose()

    logs = server.logs()
    # The run was really at DEBUG, with slack_sdk's and Bolt's request/response dumps in it.
    assert " DEBUG slack_sdk" in logs and " DEBUG slack_bolt" in logs
    assert "[redacted]" in logs
    secrets = issued_tokens(standin) + [CLIENT_SECRET, SIGNING_SECRET, TEST_ENCRYPTION_KEY] + codes
    assert len(secrets) > 12 and all(len(code) >= 10 for code in codes)
    leaked = [s[:12] + "…" for s in secrets if s in logs]
    assert leaked == [], f"secrets in the server log: {leaked}"
    assert not UNMASKED_TOKEN.search(logs), UNMASKED_TOKEN.search(logs).group(0)[:12]

"""The Slack stand-in, driven over real HTTP with slack_sdk and urllib (offline, fast)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from slack_bolt import App, BoltRequest
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth import AuthorizeUrlGenerator
from slack_sdk.oauth.installation_store import FileInstallationStore, Installation
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.oauth.token_rotation import TokenRotator
from slack_sdk.signature import SignatureVerifier

from slack_standin import ApiCall, SlackStandIn, Workspace, sign, signed_headers

CLIENT_ID = "111.222"
CLIENT_SECRET = "sek"
SIGNING_SECRET = "sig"
REDIRECT_URI = "http://127.0.0.1:9/slack/oauth_redirect"


# --------------------------------------------------------------------------- helpers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, Message, bytes]:
    """One raw request, redirects not followed (like a browser's network tab); headers case-insensitive."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _opener.open(request, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def authorize_url(
    s: SlackStandIn,
    scopes: tuple[str, ...] = ("chat:write", "commands"),
    user_scopes: tuple[str, ...] = (),
    state: str = "state-1",
    team: str | None = None,
) -> str:
    generator = AuthorizeUrlGenerator(
        client_id=CLIENT_ID,
        scopes=list(scopes),
        user_scopes=list(user_scopes),
        redirect_uri=REDIRECT_URI,
        authorization_url=s.authorize_url,
    )
    return generator.generate(state=state, team=team)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def api(s: SlackStandIn, token: str | None = None) -> WebClient:
    return WebClient(token=token, base_url=s.api_url)


def exchange(s: SlackStandIn, location: str) -> dict[str, Any]:
    code = query_of(location)["code"]
    resp = api(s).oauth_v2_access(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code, redirect_uri=REDIRECT_URI
    )
    return resp.data  # type: ignore[return-value]


def install(
    s: SlackStandIn, ws: Workspace, user_scopes: tuple[str, ...] = (), org_install: bool = False
) -> dict[str, Any]:
    location = s.approve(authorize_url(s, user_scopes=user_scopes), team_id=ws.team_id, org_install=org_install)
    return exchange(s, location)


def slack_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return excinfo.value.response["error"]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        signing_secret=SIGNING_SECRET,
        app_id="A0APP",
        token_lifetime_seconds=43200,
        latency_seconds=0.0,
    ) as s:
        s.redirect_uri = REDIRECT_URI
        yield s


class _RecordingApp(BaseHTTPRequestHandler):
    """A stand-in for the Bolt app: records what it is sent, answers 200."""

    server: Any

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        reply = b'{"response_type":"ephemeral","text":"got it"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def app_server(slack: SlackStandIn) -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingApp)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    slack.request_url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    yield server
    server.shutdown()
    server.server_close()


def verify(headers: dict[str, str], body: bytes) -> bool:
    return SignatureVerifier(SIGNING_SECRET).is_valid(
        body=body, timestamp=headers["x-slack-request-timestamp"], signature=headers["x-slack-signature"]
    )


# --------------------------------------------------------------------------- OAuth install


def test_install_through_consent_page_and_code_is_single_use(slack: SlackStandIn) -> None:
    ws = slack.create_workspace(name="Acme")
    assert (ws.team_id, ws.installer_user_id, ws.bot_user_id) == ("T0001", "U0001", None)
    url = authorize_url(slack, team=ws.team_id)

    status, headers, page = http(url)
    html = page.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in html and "<main>" in html
    assert "chat:write" in html and "commands" in html
    assert f'<option value="{ws.team_id}" selected>' in html
    assert 'for="team"' in html and 'for="user"' in html
    assert ">Allow</button>" in html and ">Cancel</button>" in html
    assert "http://" not in html.split("<form")[0].split("</style>")[0]  # no external assets

    form = {
        "client_id": CLIENT_ID,
        "scope": "chat:write,commands",
        "state": "state-1",
        "redirect_uri": REDIRECT_URI,
        "team": ws.team_id,
        "user": "",
        "decision": "allow",
    }
    status, headers, _ = http(slack.url + "/oauth/v2/authorize/decision", urlencode(form).encode())
    assert status == 302
    location = headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert query_of(location)["state"] == "state-1"

    data = exchange(slack, location)
    assert data["ok"] is True and data["app_id"] == "A0APP"
    assert data["token_type"] == "bot" and data["scope"] == "chat:write,commands"
    assert data["access_token"].startswith("xoxe.xoxb-1-")
    assert data["refresh_token"].startswith("xoxe-1-")
    assert data["expires_in"] == 43200
    assert data["team"] == {"id": ws.team_id, "name": "Acme"}
    assert data["enterprise"] is None and data["is_enterprise_install"] is False
    assert data["authed_user"] == {"id": ws.installer_user_id}
    assert data["bot_user_id"] == ws.bot_user_id and ws.bot_user_id.startswith("U0BOT")
    assert ws.installed and ws.bot_id and ws.bot_id.startswith("B")

    with pytest.raises(SlackApiError) as e:
        exchange(slack, location)
    assert slack_error(e) == "invalid_code"


def test_cancel_unknown_client_and_programmatic_decisions(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    url = authorize_url(slack, state="xyz")

    assert query_of(slack.cancel(url)) == {"error": "access_denied", "state": "xyz"}
    status, headers, _ = http(url + "&decision=cancel")
    assert status == 302 and query_of(headers["Location"]) == {"error": "access_denied", "state": "xyz"}

    status, headers, page = http(slack.authorize_url + "?client_id=999.999&scope=chat:write&state=s")
    assert status == 400 and b'<html lang="en">' in page
    with pytest.raises(ValueError):
        slack.approve(slack.authorize_url + "?client_id=999.999&scope=chat:write&state=s")

    # direct GET decision with a chosen installer and user scopes
    url = authorize_url(slack, user_scopes=("search:read",))
    status, headers, _ = http(url + f"&decision=allow&team={ws.team_id}&user=U777")
    assert status == 302
    data = exchange(slack, headers["Location"])
    user = data["authed_user"]
    assert user["id"] == "U777" and user["token_type"] == "user" and user["scope"] == "search:read"
    assert user["access_token"].startswith("xoxe.xoxp-1-") and user["refresh_token"].startswith("xoxe-1-")
    assert user["expires_in"] == 43200
    who = api(slack, user["access_token"]).auth_test()
    assert who["user_id"] == "U777" and who["team_id"] == ws.team_id and "bot_id" not in who.data

    # "a new workspace" from the picker, no redirect_uri in the URL (falls back to the registered one)
    bare = f"{slack.authorize_url}?client_id={CLIENT_ID}&scope=chat:write&state=s2"
    form = {"client_id": CLIENT_ID, "scope": "chat:write", "state": "s2", "team": "__new__", "decision": "allow"}
    status, headers, _ = http(slack.url + "/oauth/v2/authorize/decision", urlencode(form).encode())
    assert status == 302 and headers["Location"].startswith(REDIRECT_URI)
    assert len(slack.workspaces) == 2
    assert http(bare)[0] == 200


def test_client_credentials_redirect_uri_and_code_expiry(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    location = slack.approve(authorize_url(slack), team_id=ws.team_id)
    code = query_of(location)["code"]
    client = api(slack)

    with pytest.raises(SlackApiError) as e:
        client.oauth_v2_access(client_id=CLIENT_ID, client_secret="wrong", code=code)
    assert slack_error(e) == "bad_client_secret"
    with pytest.raises(SlackApiError) as e:
        client.oauth_v2_access(client_id="1.2", client_secret=CLIENT_SECRET, code=code)
    assert slack_error(e) == "invalid_client_id"

    # form-encoded credentials (no Basic auth) work, and the code survived the rejected attempts
    status, _, body = http(
        slack.api_url + "oauth.v2.access",
        urlencode({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and json.loads(body)["ok"] is True

    location = slack.approve(authorize_url(slack), team_id=ws.team_id)
    with pytest.raises(SlackApiError) as e:
        client.oauth_v2_access(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=query_of(location)["code"], redirect_uri="http://evil/"
        )
    assert slack_error(e) == "bad_redirect_uri"

    slack.code_lifetime_seconds = 0
    location = slack.approve(authorize_url(slack), team_id=ws.team_id)
    time.sleep(0.01)
    with pytest.raises(SlackApiError) as e:
        exchange(slack, location)
    assert slack_error(e) == "invalid_code"


# --------------------------------------------------------------------------- tokens


def test_refresh_is_single_use_and_old_token_lives_until_expiry(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    first = install(slack, ws)
    client = api(slack)

    rotated = client.oauth_v2_access(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert rotated["token_type"] == "bot" and rotated["expires_in"] == 43200
    assert rotated["team"] == {"id": ws.team_id, "name": ws.name} and rotated["is_enterprise_install"] is False
    assert rotated["access_token"] != first["access_token"]
    assert rotated["refresh_token"] != first["refresh_token"]

    with pytest.raises(SlackApiError) as e:
        client.oauth_v2_access(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token=first["refresh_token"],
        )
    assert slack_error(e) == "invalid_refresh_token"

    # the old access token is still good until its own expiry
    assert api(slack, first["access_token"]).auth_test()["team_id"] == ws.team_id
    assert api(slack, rotated["access_token"]).auth_test()["team_id"] == ws.team_id

    assert slack.expire_tokens(team_id=ws.team_id) == 2
    for token in (first["access_token"], rotated["access_token"]):
        with pytest.raises(SlackApiError) as e:
            api(slack, token).auth_test()
        assert slack_error(e) == "token_expired"

    again = client.oauth_v2_access(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_type="refresh_token", refresh_token=rotated["refresh_token"]
    )
    assert api(slack, again["access_token"]).auth_test()["ok"] is True

    assert slack.revoke_refresh_tokens(ws.team_id) == 1
    with pytest.raises(SlackApiError) as e:
        client.oauth_v2_access(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token=again["refresh_token"],
        )
    assert slack_error(e) == "invalid_refresh_token"


def test_slack_sdk_token_rotator_works_against_the_stand_in(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    data = install(slack, ws, user_scopes=("search:read",))
    user = data["authed_user"]
    installation = Installation(
        app_id=data["app_id"],
        team_id=data["team"]["id"],
        bot_token=data["access_token"],
        bot_refresh_token=data["refresh_token"],
        bot_token_expires_in=data["expires_in"],
        bot_user_id=data["bot_user_id"],
        bot_scopes=data["scope"],
        user_id=user["id"],
        user_token=user["access_token"],
        user_refresh_token=user["refresh_token"],
        user_token_expires_in=user["expires_in"],
        user_scopes=user["scope"],
    )
    rotator = TokenRotator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, client=api(slack))
    assert rotator.perform_token_rotation(installation=installation) is None  # 12 h left: nothing to do

    slack.expire_tokens(team_id=ws.team_id)
    rotated = rotator.perform_token_rotation(installation=installation, minutes_before_expiration=24 * 60)
    assert rotated is not None
    assert rotated.bot_token != installation.bot_token and rotated.user_token != installation.user_token
    assert rotated.bot_token_expires_at and rotated.bot_token_expires_at > time.time() + 43000
    assert api(slack, rotated.bot_token).auth_test()["user_id"] == ws.bot_user_id
    assert api(slack, rotated.user_token).auth_test()["user_id"] == ws.installer_user_id

    # rotating from the stale installation again reuses spent refresh tokens
    with pytest.raises(SlackTokenRotationError):
        rotator.perform_token_rotation(installation=installation, minutes_before_expiration=24 * 60)


def test_auth_test_and_auth_errors(slack: SlackStandIn) -> None:
    ws = slack.create_workspace(name="Beta Team")
    data = install(slack, ws)
    who = api(slack, data["access_token"]).auth_test().data
    assert who == {
        "ok": True,
        "url": "https://beta-team.slack.com/",
        "team": "Beta Team",
        "user": "standin-bot",
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "is_enterprise_install": False,
    }

    for token, error in ((None, "not_authed"), ("xoxb-nope", "invalid_auth"), (data["refresh_token"], "invalid_auth")):
        with pytest.raises(SlackApiError) as e:
            api(slack, token).auth_test()
        assert slack_error(e) == error
    assert [c.error for c in slack.calls_for("auth.test")][-3:] == ["not_authed", "invalid_auth", "invalid_auth"]

    other = install(slack, ws)
    assert api(slack, other["access_token"]).auth_revoke()["revoked"] is True
    with pytest.raises(SlackApiError) as e:
        api(slack, other["access_token"]).auth_test()
    assert slack_error(e) == "token_revoked"

    api(slack, data["access_token"]).apps_uninstall(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert ws.installed is False
    with pytest.raises(SlackApiError) as e:
        api(slack, data["access_token"]).auth_test()
    assert slack_error(e) == "account_inactive"
    with pytest.raises(SlackApiError) as e:
        api(slack).oauth_v2_access(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_type="refresh_token", refresh_token=data["refresh_token"]
        )
    assert slack_error(e) == "invalid_refresh_token"


# --------------------------------------------------------------------------- Web API


def test_post_and_update_are_recorded_per_workspace(slack: SlackStandIn) -> None:
    a, b = slack.create_workspace(), slack.create_workspace()
    bot_a = api(slack, install(slack, a)["access_token"])
    bot_b = api(slack, install(slack, b)["access_token"])
    assert a.bot_user_id != b.bot_user_id

    first = bot_a.chat_postMessage(channel=a.default_channel_id, text="hello A")
    second = bot_b.chat_postMessage(channel=b.default_channel_id, text="hello B", thread_ts="123.456")
    assert first["channel"] == a.default_channel_id
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["user"] == a.bot_user_id and first["message"]["text"] == "hello A"

    posts = slack.calls_for("chat.postMessage")
    assert [(c.team_id, c.user_id, c.token_kind, c.ok) for c in posts] == [
        (a.team_id, a.bot_user_id, "bot", True),
        (b.team_id, b.bot_user_id, "bot", True),
    ]
    assert isinstance(posts[0], ApiCall) and "token" not in posts[0].params
    assert posts[0].params["text"] == "hello A"
    assert "xoxe" not in repr(posts[0])  # tokens are redacted in reprs

    # a workspace cannot reach into another one
    with pytest.raises(SlackApiError) as e:
        bot_b.chat_postMessage(channel=a.default_channel_id, text="leak")
    assert slack_error(e) == "channel_not_found"
    with pytest.raises(SlackApiError) as e:
        bot_b.chat_update(channel=a.default_channel_id, ts=first["ts"], text="x")
    assert slack_error(e) == "channel_not_found"

    with pytest.raises(SlackApiError) as e:
        bot_a.chat_update(channel=a.default_channel_id, ts="1.000001", text="x")
    assert slack_error(e) == "message_not_found"
    with pytest.raises(SlackApiError) as e, pytest.warns(UserWarning):  # slack_sdk warns about missing text too
        bot_a.chat_postMessage(channel=a.default_channel_id)
    assert slack_error(e) == "no_text"
    with pytest.raises(SlackApiError) as e:
        bot_a.chat_postMessage(channel="", text="x")
    assert slack_error(e) == "channel_not_found"

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*v2*"}}]
    updated = bot_a.chat_update(channel=a.default_channel_id, ts=first["ts"], text="v2", blocks=blocks)
    assert updated["ts"] == first["ts"] and updated["message"]["blocks"] == blocks

    [msg] = slack.messages(a.team_id, channel=a.default_channel_id)
    assert msg["text"] == "v2" and msg["blocks"] == blocks and msg["user"] == a.bot_user_id
    assert msg["history"] == [{"text": "hello A", "blocks": None, "attachments": None}]
    assert msg["edited"]["user"] == a.bot_user_id
    assert [m["thread_ts"] for m in slack.messages(b.team_id)] == ["123.456"]

    bot_a.reactions_add(channel=a.default_channel_id, timestamp=first["ts"], name="tada")
    eph = bot_a.chat_postEphemeral(channel=a.default_channel_id, user=a.installer_user_id, text="psst")
    assert slack.ephemerals(a.team_id)[0]["message_ts"] == eph["message_ts"]
    bot_a.chat_delete(channel=a.default_channel_id, ts=first["ts"])
    assert slack.messages(a.team_id) == []
    assert slack.messages(a.team_id, include_deleted=True)[0]["reactions"][0]["name"] == "tada"

    assert bot_a.conversations_info(channel=a.default_channel_id)["channel"]["name"] == "general"
    assert bot_a.users_info(user=a.installer_user_id)["user"]["team_id"] == a.team_id
    with pytest.raises(SlackApiError) as e:
        bot_a.users_info(user=b.installer_user_id)
    assert slack_error(e) == "user_not_found"


def test_rate_limit_answers_429_with_retry_after(slack: SlackStandIn) -> None:
    a, b = slack.create_workspace(), slack.create_workspace()
    bot_a = api(slack, install(slack, a)["access_token"])
    bot_b = api(slack, install(slack, b)["access_token"])
    slack.set_rate_limit("chat.postMessage", max_calls=2, per_seconds=60, retry_after=7)

    bot_a.chat_postMessage(channel=a.default_channel_id, text="1")
    bot_a.chat_postMessage(channel=a.default_channel_id, text="2")
    with pytest.raises(SlackApiError) as e:
        bot_a.chat_postMessage(channel=a.default_channel_id, text="3")
    assert e.value.response.status_code == 429
    assert e.value.response.headers["Retry-After"] == "7"
    assert slack_error(e) == "ratelimited"
    assert slack.calls[-1].status == 429 and slack.calls[-1].error == "ratelimited"

    bot_b.chat_postMessage(channel=b.default_channel_id, text="other workspace unaffected")
    assert len(slack.messages(a.team_id)) == 2


def test_not_in_channel(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    bot = api(slack, install(slack, ws)["access_token"])
    other = slack.create_channel(ws.team_id, name="random")
    posted = bot.chat_postMessage(channel=other, text="before")
    slack.set_bot_channels(ws.team_id, [ws.default_channel_id])

    bot.chat_postMessage(channel=ws.default_channel_id, text="fine")
    with pytest.raises(SlackApiError) as e:
        bot.chat_postMessage(channel=other, text="nope")
    assert slack_error(e) == "not_in_channel"
    with pytest.raises(SlackApiError) as e:
        bot.chat_update(channel=other, ts=posted["ts"], text="nope")
    assert slack_error(e) == "not_in_channel"

    slack.set_bot_channels(ws.team_id, None)
    bot.chat_postMessage(channel=other, text="back in")


def test_json_form_and_query_bodies(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    token = install(slack, ws)["access_token"]
    url = slack.api_url + "chat.postMessage"

    form = urlencode(
        {"token": token, "channel": ws.default_channel_id, "text": "form", "blocks": json.dumps([{"type": "divider"}])}
    ).encode()
    status, _, body = http(url, form, {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and json.loads(body)["ok"] is True

    payload = json.dumps({"channel": ws.default_channel_id, "text": "json"}).encode()
    status, headers, body = http(
        url, payload, {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {token}"}
    )
    assert status == 200 and json.loads(body)["ok"] is True
    assert headers["Content-Type"].startswith("application/json")

    status, _, body = http(url + "?" + urlencode({"token": token, "channel": ws.default_channel_id, "text": "get"}))
    assert json.loads(body)["ok"] is True

    assert [m["text"] for m in slack.messages(ws.team_id)] == ["form", "json", "get"]
    assert slack.messages(ws.team_id)[0]["blocks"] == [{"type": "divider"}]
    assert all("token" not in c.params for c in slack.calls)

    _, _, body = http(url, b"{not json", {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert json.loads(body) == {"ok": False, "error": "invalid_json"}
    _, _, body = http(slack.api_url + "nope.nothing", b"", {"Authorization": f"Bearer {token}"}, method="POST")
    assert json.loads(body) == {"ok": False, "error": "unknown_method"}
    _, _, body = http(slack.api_url + "apps.connections.open", b"", {"Authorization": f"Bearer {token}"}, method="POST")
    # Socket Mode (tests/standin/test_socket_mode.py) takes app-level tokens only.
    assert json.loads(body) == {"ok": False, "error": "not_allowed_token_type"}


def test_org_wide_install(slack: SlackStandIn) -> None:
    org = slack.create_enterprise(name="Starship")
    one = slack.create_workspace(enterprise_id=org.enterprise_id, name="One")
    two = slack.create_workspace(enterprise_id=org.enterprise_id, name="Two")
    solo = slack.create_workspace()
    assert one.enterprise_name == "Starship"

    # the consent page offers the org-wide choice once an org workspace exists
    assert b'name="org_install"' in http(authorize_url(slack, team=one.team_id))[2]
    with pytest.raises(ValueError):
        slack.approve(authorize_url(slack), team_id=solo.team_id, org_install=True)

    data = install(slack, one, org_install=True)
    assert data["team"] is None
    assert data["enterprise"] == {"id": org.enterprise_id, "name": "Starship"}
    assert data["is_enterprise_install"] is True
    assert data["token_type"] == "bot" and data["bot_user_id"] == one.bot_user_id == two.bot_user_id
    assert one.is_enterprise_install and two.is_enterprise_install and not solo.installed
    later = slack.create_workspace(enterprise_id=org.enterprise_id)
    assert later.installed and later.bot_user_id == one.bot_user_id

    bot = api(slack, data["access_token"])
    who = bot.auth_test()
    assert who["enterprise_id"] == org.enterprise_id and who["is_enterprise_install"] is True
    assert who["team_id"] is None and who["url"] == "https://starship.enterprise.slack.com/"

    bot.chat_postMessage(channel=two.default_channel_id, text="hi two")
    call = slack.calls_for("chat.postMessage")[-1]
    assert (call.team_id, call.enterprise_id) == (two.team_id, org.enterprise_id)
    assert [m["text"] for m in slack.messages(two.team_id)] == ["hi two"]
    with pytest.raises(SlackApiError) as e:
        bot.chat_postMessage(channel=solo.default_channel_id, text="outside the org")
    assert slack_error(e) == "channel_not_found"

    rotated = api(slack).oauth_v2_access(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, grant_type="refresh_token", refresh_token=data["refresh_token"]
    )
    assert rotated["team"] is None and rotated["enterprise"]["id"] == org.enterprise_id
    assert rotated["is_enterprise_install"] is True


# --------------------------------------------------------------------------- Slack -> app


def test_events_commands_and_interactions_are_signed(slack: SlackStandIn, app_server: Any) -> None:
    ws = slack.create_workspace()
    install(slack, ws)

    status, _, body = slack.send_mention(ws, "hi there")
    assert status == 200 and json.loads(body)["text"] == "got it"
    headers, raw = app_server.requests[-1]
    assert headers["content-type"] == "application/json" and verify(headers, raw)
    envelope = json.loads(raw)
    assert envelope["type"] == "event_callback" and envelope["api_app_id"] == "A0APP"
    assert envelope["team_id"] == ws.team_id and envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"] == [
        {
            "enterprise_id": None,
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "is_bot": True,
            "is_enterprise_install": False,
        }
    ]
    event = envelope["event"]
    assert event["type"] == "app_mention" and event["text"] == f"<@{ws.bot_user_id}> hi there"
    assert event["ts"] and event["channel"] == ws.default_channel_id
    assert envelope["context_team_id"] == ws.team_id and envelope["is_ext_shared_channel"] is False

    resp = slack.send_event(ws.team_id, {"type": "app_home_opened", "user": "U55"}, event_id="Ev1", retry_num=1)
    headers, raw = app_server.requests[-1]
    assert resp.payload["event_id"] == "Ev1" and json.loads(raw)["event"]["event_ts"]
    assert headers["x-slack-retry-num"] == "1" and verify(headers, raw)

    slack.send_slash_command(ws, "/poll", "Lunch? pizza, tacos")
    headers, raw = app_server.requests[-1]
    assert headers["content-type"] == "application/x-www-form-urlencoded" and verify(headers, raw)
    form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    assert form["command"] == "/poll" and form["text"] == "Lunch? pizza, tacos"
    assert form["team_id"] == ws.team_id and form["team_domain"] == ws.domain
    assert form["user_id"] == ws.installer_user_id and form["api_app_id"] == "A0APP"
    assert form["is_enterprise_install"] == "false" and form["response_url"].startswith(slack.url)
    assert "enterprise_id" not in form  # only sent for Enterprise Grid workspaces, like Slack
    assert form["trigger_id"]

    slack.send_interactive(ws, {"type": "block_actions", "actions": [{"action_id": "vote"}], "channel": {"id": "C0001"}})
    headers, raw = app_server.requests[-1]
    assert verify(headers, raw)
    payload = json.loads(parse_qs(raw.decode())["payload"][0])
    assert payload["team"]["id"] == ws.team_id and payload["user"]["id"] == ws.installer_user_id
    assert payload["api_app_id"] == "A0APP" and payload["is_enterprise_install"] is False
    assert payload["enterprise"] is None and payload["trigger_id"] and payload["response_url"]

    # module-level helpers agree with slack_sdk
    assert sign(SIGNING_SECRET, 1700000000, b"x=1") == SignatureVerifier(SIGNING_SECRET).generate_signature(
        timestamp="1700000000", body="x=1"
    )
    signed = signed_headers(SIGNING_SECRET, b"{}", content_type="json")
    assert signed["Content-Type"] == "application/json"
    assert verify({k.lower(): v for k, v in signed.items()}, b"{}")
    assert [s["kind"] for s in slack.sent] == ["event", "event", "slash_command", "interactive"]


def test_views_triggers_and_response_urls(slack: SlackStandIn, app_server: Any) -> None:
    ws = slack.create_workspace()
    bot = api(slack, install(slack, ws)["access_token"])
    slack.send_slash_command(ws, "/poll")
    form = {k: v[0] for k, v in parse_qs(app_server.requests[-1][1].decode()).items()}

    modal = {"type": "modal", "callback_id": "new_poll", "title": {"type": "plain_text", "text": "Poll"}, "blocks": []}
    opened = bot.views_open(trigger_id=form["trigger_id"], view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "new_poll"
    updated = bot.views_update(view_id=opened["id"], hash=opened["hash"], view=dict(modal, private_metadata="m"))
    assert updated["view"]["private_metadata"] == "m"
    with pytest.raises(SlackApiError) as e:
        bot.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    assert slack_error(e) == "hash_conflict"
    with pytest.raises(SlackApiError) as e:
        bot.views_open(trigger_id="123.456.abc", view=modal)
    assert slack_error(e) == "invalid_trigger_id"
    bot.views_publish(user_id=ws.installer_user_id, view={"type": "home", "blocks": []})
    assert [(v["via"], v["type"]) for v in slack.views(ws.team_id)] == [("views.open", "modal"), ("views.publish", "home")]

    status, _, body = http(
        form["response_url"], json.dumps({"text": "Poll created"}).encode(), {"Content-Type": "application/json"}
    )
    assert (status, body) == (200, b"ok")
    [response] = slack.responses(ws.team_id)
    assert response["body"] == {"text": "Poll created"} and response["user_id"] == ws.installer_user_id
    assert http(slack.url + "/response_url/T0/none", b"{}", {"Content-Type": "application/json"})[0] == 404


def test_post_to_app_requires_request_url(slack: SlackStandIn) -> None:
    with pytest.raises(RuntimeError):
        slack.post_to_app({"type": "url_verification"})


# --------------------------------------------------------------------------- misbehaviour


def test_injected_failures_and_latency(slack: SlackStandIn) -> None:
    ws = slack.create_workspace()
    bot = api(slack, install(slack, ws)["access_token"])

    slack.set_failure("chat.postMessage", error="service_unavailable", status=503, count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as e:
            bot.chat_postMessage(channel=ws.default_channel_id, text="x")
        assert e.value.response.status_code == 503 and slack_error(e) == "service_unavailable"
    assert bot.chat_postMessage(channel=ws.default_channel_id, text="x")["ok"] is True

    slack.set_failure("auth.test", error="fatal_error")
    with pytest.raises(SlackApiError) as e:
        bot.auth_test()
    assert e.value.response.status_code == 200 and slack_error(e) == "fatal_error"

    slack.latency_seconds = 0.2
    started = time.monotonic()
    bot.auth_test()
    assert time.monotonic() - started >= 0.2
    slack.latency_seconds = 0.0


def test_index_page_lists_workspaces(slack: SlackStandIn) -> None:
    ws = slack.create_workspace(name="Listed")
    status, _, body = http(slack.url + "/")
    assert status == 200 and ws.team_id.encode() in body and b"Listed" in body


# --------------------------------------------------------------------------- a real Bolt app


def _serve_bolt(app: App) -> ThreadingHTTPServer:
    """Minimal HTTP adapter for a Bolt app (install, OAuth redirect, events) using public Bolt APIs."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            request = BoltRequest(body=body, query=parts.query, headers={k: v for k, v in self.headers.items()})
            assert app.oauth_flow is not None
            if parts.path == "/slack/install":
                response = app.oauth_flow.handle_installation(request)
            elif parts.path == "/slack/oauth_redirect":
                response = app.oauth_flow.handle_callback(request)
            else:
                response = app.dispatch(request)
            self.send_response(response.status)
            for name, values in response.headers.items():
                for value in values:
                    self.send_header(name, value)
            payload = response.body.encode() if isinstance(response.body, str) else response.body
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def test_real_bolt_app_installs_handles_events_and_rotates_tokens(tmp_path: Any) -> None:
    # Tokens live 10 minutes, less than Bolt's 120-minute rotation window: Bolt rotates before each use.
    with SlackStandIn(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, signing_secret=SIGNING_SECRET, token_lifetime_seconds=600
    ) as slack:
        ws = slack.create_workspace(name="Acme")
        store = FileInstallationStore(base_dir=str(tmp_path / "installations"))
        app = App(
            signing_secret=SIGNING_SECRET,
            client=WebClient(base_url=slack.api_url),
            installation_store=store,  # also passed here so Bolt's token rotator uses `client` (the stand-in)
            process_before_response=True,
            oauth_settings=OAuthSettings(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                scopes=["chat:write", "app_mentions:read", "commands"],
                user_scopes=["search:read"],
                installation_store=store,
                state_store=FileOAuthStateStore(expiration_seconds=600, base_dir=str(tmp_path / "states")),
                authorization_url=slack.authorize_url,
                install_page_rendering_enabled=False,
            ),
        )

        @app.event("app_mention")
        def reply(event: dict[str, Any], say: Any) -> None:
            say("hi!", thread_ts=event["ts"])

        server = _serve_bolt(app)
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            slack.redirect_uri = base + "/slack/oauth_redirect"
            slack.request_url = base + "/slack/events"

            # the browser: app install link -> stand-in consent page -> Allow -> back to the app
            status, headers, _ = http(base + "/slack/install")
            assert status == 302 and headers["Location"].startswith(slack.authorize_url)
            cookie = headers["set-cookie"].split(";")[0]
            assert http(headers["Location"])[0] == 200
            query = query_of(headers["Location"])
            form = dict(query, team=ws.team_id, decision="allow")
            status, headers, _ = http(slack.url + "/oauth/v2/authorize/decision", urlencode(form).encode())
            assert status == 302
            status, _, _ = http(headers["Location"], headers={"Cookie": cookie})
            assert status == 200
            installation = store.find_installation(enterprise_id=None, team_id=ws.team_id)
            assert installation is not None and installation.bot_user_id == ws.bot_user_id
            assert installation.bot_token and installation.bot_refresh_token and installation.bot_token_expires_at

            mention = slack.send_mention(ws, "hello")
            assert mention.status == 200
            [msg] = slack.messages(ws.team_id)
            assert msg["text"] == "hi!" and msg["thread_ts"] == mention.payload["event"]["ts"]
            refreshes = [c for c in slack.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
            assert len(refreshes) == 2 and all(c.ok for c in refreshes)  # bot and user tokens rotated
            rotated = store.find_installation(enterprise_id=None, team_id=ws.team_id)
            assert rotated is not None and rotated.bot_token != installation.bot_token
            assert slack.token_info(installation.bot_refresh_token)["used"] is True  # type: ignore[index]
        finally:
            server.shutdown()
            server.server_close()

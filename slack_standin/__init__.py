"""A local stand-in for slack.com, so the app can be installed and exercised fully offline.

Why: a multi-workspace Bolt app has behaviour that only shows up against Slack itself
(OAuth installs, token rotation, per-workspace tokens, rate limits, signed requests).
This package plays Slack's side of those wire formats on 127.0.0.1, in-process, for the
test suite and for the offline developer sandbox. It is deliberately small: it speaks the
formats faithfully where the app (slack_sdk / Bolt) depends on them, and keeps the rest
simple. Standard library only, plus ``websockets`` for Socket Mode; thread-safe (one lock
around all state).

Starting it::

    from slack_standin import SlackStandIn

    with SlackStandIn(client_id="111.222", client_secret="sek", signing_secret="sig") as slack:
        slack.redirect_uri = "http://127.0.0.1:3000/slack/oauth_redirect"
        slack.request_url = "http://127.0.0.1:3000/slack/events"
        ws = slack.create_workspace(name="Acme")   # T0001, installer U0001, channel C0001
        ...

    # or: slack = SlackStandIn(...).start(); ...; slack.stop()

Pointing the app at it::

    WebClient(base_url=slack.api_url)                   # every Web API call, incl. oauth.v2.access
    OAuthSettings(..., authorization_url=slack.authorize_url)
    # and the app's signing secret / client id / secret must match the stand-in's.

Installing (token rotation is always on)::

    url = AuthorizeUrlGenerator(client_id=..., scopes=["chat:write"],
                                authorization_url=slack.authorize_url).generate(state="s1")
    location = slack.approve(url, team_id=ws.team_id)   # "redirect_uri?code=...&state=s1"
    # or in a browser: the consent page at `url` (Allow / Cancel, workspace picker,
    # org-wide checkbox); or GET url + "&decision=allow&team=T0001" for a direct 302.
    # The app then exchanges the code at oauth.v2.access; ws.bot_user_id is now set.
    # Org-wide: org = slack.create_enterprise(); w = slack.create_workspace(enterprise_id=
    #   org.enterprise_id); slack.approve(url, team_id=w.team_id, org_install=True)

Talking to the app as Slack (signed with the signing secret, v0 scheme)::

    slack.send_mention(ws, "hello")              # app_mention event_callback
    slack.send_event(ws, {"type": "app_home_opened", "user": ws.installer_user_id})
    slack.send_slash_command(ws, "/poll", "Lunch? pizza, tacos")   # with response_url + trigger_id
    slack.send_interactive(ws, {"type": "block_actions", "actions": [...]})
    # each returns (status, headers, body); `.payload` is what was sent.

Socket Mode (the app connects out; see socketmode.py for the wire format)::

    env SLACK_APP_TOKEN=slack.app_token            # or slack.create_app_token(); revoke_app_token(t)
    # apps.connections.open (app-level token only) -> ws://127.0.0.1:PORT/link/?ticket=...
    # (single-use ticket); the server says hello, then delivers envelopes.
    slack.wait_for_socket_connection(timeout=10)
    d = slack.send_mention(ws, "hello", via="socket")    # events_api envelope; every send_* takes via=
    d = slack.send_slash_command(ws, "/poll", "help", via="socket")   # slash_commands
    d = slack.send_interactive(ws, {...}, via="socket")  # interactive
    slack.delivery = "socket"                      # the default for send_* without via= ("http")
    # Each waits for the ack (socket_ack_timeout_seconds) and returns a SocketDelivery:
    # d.acked, d.ack_seconds, d.ack, d.json() (ack payload), d.envelope; unpacks like AppResponse.
    slack.socket_send("events_api", payload, retry_num=1)            # a raw envelope
    slack.socket_acks; slack.socket_deliveries; slack.socket_connections   # what happened
    slack.drop_socket_connections("abort")         # or "close" (close frame), "disconnect" (Slack's
                                                   # refresh message); the app should reconnect

Looking at what the app did::

    slack.calls / slack.calls_for("chat.postMessage")   # ApiCall records (method, params, team_id, ok, ...)
    slack.messages(ws.team_id, channel=None)            # posted messages, with edit history
    slack.views(ws.team_id); slack.ephemerals(ws.team_id); slack.responses(ws.team_id)

Making Slack misbehave::

    slack.expire_tokens(team_id=ws.team_id)      # -> token_expired until the app rotates
    slack.revoke_refresh_tokens(ws.team_id)      # -> invalid_refresh_token on rotation
    slack.set_rate_limit("chat.postMessage", max_calls=1, per_seconds=60, retry_after=3)  # -> 429
    slack.set_bot_channels(ws.team_id, [ws.default_channel_id])   # elsewhere -> not_in_channel
    slack.set_failure("chat.postMessage", status=503, count=2)    # transient upstream errors
    slack.latency_seconds = 0.5
    slack.uninstall(team_id=ws.team_id)          # tokens -> account_inactive

Supported Web API methods: oauth.v2.access (code and refresh_token grants), auth.test,
auth.revoke, apps.uninstall, chat.postMessage/update/delete/postEphemeral, views.open/
update/push/publish, conversations.info, users.info, reactions.add, api.test;
apps.connections.open (app-level tokens; bot and user tokens answer ``not_allowed_token_type``,
as app-level tokens do everywhere else); anything else answers ``unknown_method``. Unknown channel ids are created on first use in the
token's workspace unless ``strict_channels`` is set; channels of another workspace
answer ``channel_not_found``.

Tokens look like Slack's rotating ones: ``xoxe.xoxb-1-...`` (bot), ``xoxe.xoxp-1-...``
(user), ``xoxe-1-...`` (refresh, strictly single-use). Logs and reprs only ever show
a token's last 4 characters.

Things worth knowing:

* Bolt wiring: pass ``installation_store=`` to ``App(...)`` as well as to ``OAuthSettings``.
  With only ``oauth_settings``, Bolt's authorize step builds its own TokenRotator whose
  WebClient points at slack.com, so token rotation would escape the stand-in.
* ``expire_tokens`` expires tokens on the server only; the app's stored ``expires_at`` does
  not change, so Bolt sees ``token_expired`` (tests the app's reaction to that). To test
  Bolt's proactive rotation, use a ``token_lifetime_seconds`` shorter than the app's
  ``token_rotation_expiration_minutes`` window (default 120 min): Bolt then rotates
  before each use.
* Org-wide installs: event envelopes carry ``authorizations[0].team_id = None`` (as Slack
  does), so Bolt's ``context.team_id`` is None there; the workspace is in the envelope's
  ``team_id`` / ``context_team_id``. ``auth.test`` on an org-wide token has ``team_id`` None
  and an ``https://<org>.enterprise.slack.com/`` url.
* The OAuth ``redirect_uri`` comes from the authorize URL, else from ``redirect_uri``.

The sandbox's web console (console.py; ``python main.py sandbox`` runs it, see slack_standin/sandbox.py)::

    from slack_standin.console import Console
    slack.console = Console(slack, app_url="http://127.0.0.1:3000", bot_name="Workspace Helper",
                            commands=manifest_commands, shortcuts=manifest_shortcuts)
    # then GET slack.url + "/" is a small Slack client: install (the app's real install page with
    # ?team=T…, the consent page, the callback), post as fake users (mentions -> app_mention,
    # /commands -> send_slash_command), click Block Kit buttons/overflows (block_actions), fill
    # modals (view_submission), App Home (app_home_opened), fast-forward (expire_tokens),
    # uninstall (uninstall + app_uninstalled), and a log of every Web API call (tokens: last 4).
    # console_store.save(slack, path) / load(slack, path) keep workspaces and tokens across restarts.

A bare stand-in by hand (no app, no console): ``python -m slack_standin --help``.
"""

from .models import ApiCall, AppResponse, Enterprise, Workspace
from .server import SlackStandIn
from .signing import sign, signed_headers
from .socketmode import SocketDelivery

__all__ = [
    "ApiCall",
    "AppResponse",
    "Enterprise",
    "SlackStandIn",
    "SocketDelivery",
    "Workspace",
    "sign",
    "signed_headers",
]

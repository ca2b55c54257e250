"""A signed request from a workspace where the app is not installed is answered 200 within 3 s,
whatever its response_url does (issue 17, part 3). Bolt's own path for "no installation" posts
to the response_url while the request waits, and a failing URL made that a 500."""

from __future__ import annotations

import json

from bolt_app.answers import NOT_INSTALLED
from tests.payloads import slack_samples as samples
from tests.slack_requests.test_unhandled import timed, unhandled_cases
from tests.support import install, wait_for


def _stranger(standin, **kwargs):
    """A workspace that never installed the app (Slack still signs its requests: say the app was
    installed from its settings page and the store lost it, or the uninstall beat a click)."""
    ws = standin.create_workspace(**kwargs)
    return ws, samples.Side(team_id=ws.team_id, user_id=ws.installer_user_id, enterprise_id=ws.enterprise_id)


def _failing_response_url(standin, team_id: str) -> str:
    """A response_url at the configured Slack origin (the only one the payload checks accept) that
    Slack no longer knows: posting to it fails."""
    return standin.new_response_url(team_id).rsplit("/response_url/", 1)[0] + "/response_url/gone"


def test_a_click_from_a_workspace_not_installed_is_answered_at_once_whatever_its_response_url_does(
        live_app, standin) -> None:
    ws, me = _stranger(standin, name="Never Installed")
    channel = ws.default_channel_id

    # The response_url hangs for 10 s: the answer does not wait for it.
    standin.response_url_delay_seconds = 10
    click = samples.block_actions(me, samples.old_button_action("poll_close"), channel_id=channel,
                                  response_url=standin.new_response_url(ws.team_id))
    response, elapsed = timed(standin, click)
    assert (response.status, response.body) == (200, b"") and elapsed < 3, (response, elapsed)

    # The response_url fails: still 200 at once.
    standin.response_url_delay_seconds = 0
    for url in (_failing_response_url(standin, ws.team_id),) * 2:
        click = samples.block_actions(me, samples.old_button_action("poll_close"), channel_id=channel,
                                      response_url=url)
        response, elapsed = timed(standin, click)
        assert (response.status, response.body) == (200, b"") and elapsed < 1.5, (response, elapsed)

    # A response_url that works gets the notice, after the answer.
    click = samples.block_actions(me, samples.old_button_action(), channel_id=channel,
                                  response_url=standin.new_response_url(ws.team_id))
    response, elapsed = timed(standin, click)
    assert response.status == 200 and elapsed < 1.5
    notices = wait_for(lambda: [r for r in standin.responses(ws.team_id) if r["body"].get("text") == NOT_INSTALLED])
    assert notices and notices[0]["body"]["response_type"] == "ephemeral", standin.responses()
    assert [c for c in standin.calls if c.method != "oauth.v2.access"] == []  # no Web API call, no token


def test_every_kind_of_request_from_a_workspace_not_installed_is_answered_200(live_app, standin) -> None:
    installed = standin.create_workspace(name="Installed Co")
    assert install(live_app.url, standin, installed.team_id).response.status == 200
    ws, me = _stranger(standin, enterprise_id="E0STRANGER", name="Stranger Grid")
    url = _failing_response_url(standin, ws.team_id)
    standin.clear_calls()
    cases = unhandled_cases(standin, standin.workspace(installed.team_id))
    cases = {name: _as_from(body, me, url) for name, body in cases.items()}
    # What the app does handle, from the stranger: a mention, /poll, a vote, the modal.
    cases["app_mention"] = samples.message_in_workspace(
        me, bot_user_id="U0NOBOT", channel_id=ws.default_channel_id,
        event=samples.mention_event(user_id=me.user_id, team_id=me.team_id, channel_id=ws.default_channel_id,
                                    bot_user_id="U0NOBOT"))
    cases["/poll"] = samples.slash_command(me, "/poll", channel_id=ws.default_channel_id, response_url=url,
                                           text='"Lunch?" "Pizza" "Sushi"')
    cases["vote"] = samples.block_actions(
        me, {"type": "button", "action_id": "poll_vote_0", "block_id": "option_0", "value": "abc:0",
             "action_ts": "1.2"}, channel_id=ws.default_channel_id, response_url=url)
    cases["poll modal"] = samples.view_submission(me, samples.view(
        "poll_create_modal", viewer_team_id=me.team_id, installed_team_id=me.team_id,
        values=samples.poll_modal_values("Lunch?", ["Pizza", "Sushi"], ws.default_channel_id)))
    for name, body in cases.items():
        response, elapsed = timed(standin, body)
        assert response.status == 200 and elapsed < 1.5, (name, response.status, elapsed)
        if samples.encoding_of(body) == "form":
            assert json.loads(response.body) == {"response_type": "ephemeral", "text": NOT_INSTALLED}, name
        elif body.get("type") == "block_suggestion":
            assert json.loads(response.body) == {"options": []}, name
        else:
            assert response.body == b"", (name, response.body)
    assert standin.calls == []


def _as_from(body: dict, who: samples.Side, response_url: str) -> dict:
    """A sample re-addressed to another workspace (every id of the original's side replaced)."""
    text = json.dumps(body)
    original = body.get("team_id") or (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    text = text.replace(original, who.team_id)
    moved = json.loads(text)
    if "response_url" in moved:
        moved["response_url"] = response_url
    if moved.get("type") == "event_callback":
        moved["enterprise_id"] = who.enterprise_id
        for entry in moved["authorizations"]:
            entry["enterprise_id"] = who.enterprise_id
    elif "command" in moved:
        moved.update(enterprise_id=who.enterprise_id, enterprise_name=who.enterprise_name)
    else:
        moved["enterprise"] = who.enterprise_object()
        if isinstance(moved.get("team"), dict):
            moved["team"] = who.team_object()
    return moved

"""Signed, well-formed requests that no listener takes are answered 200 within Slack's 3 seconds,
with the body Slack expects, and each kind is logged once (issue 17, part 1)."""

from __future__ import annotations

import json
import logging
import time

from tests.payloads import slack_samples as samples
from tests.support import install


def _installed(live_app, standin, **kwargs):
    ws = standin.create_workspace(**kwargs)
    assert install(live_app.url, standin, ws.team_id).response.status == 200
    return ws


def _side(ws) -> samples.Side:
    return samples.Side(team_id=ws.team_id, user_id=ws.installer_user_id, enterprise_id=ws.enterprise_id)


def timed(standin, body):
    started = time.monotonic()
    response = samples.send(standin, body)
    return response, time.monotonic() - started


def unhandled_cases(standin, ws, *, org=None, visitor=None) -> dict[str, dict]:
    """Every kind of request the app has no listener for, from workspace `ws`."""
    me = _side(ws)
    channel = ws.default_channel_id
    url = standin.new_response_url(ws.team_id)
    cases = {
        "message": samples.message_in_workspace(me, bot_user_id=ws.bot_user_id, channel_id=channel),
        "bot_message": samples.message_in_workspace(
            me, bot_user_id=ws.bot_user_id, channel_id=channel, event=samples.bot_message_event(channel_id=channel)),
        "message_changed": samples.message_in_workspace(
            me, bot_user_id=ws.bot_user_id, channel_id=channel,
            event=samples.message_changed_event(user_id=me.user_id, channel_id=channel)),
        "link button": samples.block_actions(me, samples.link_button_action(), channel_id=channel, response_url=url),
        "unknown action_id": samples.block_actions(me, samples.old_button_action(), channel_id=channel,
                                                   response_url=url),
        "view_closed": samples.view_closed(me, samples.view("poll_create_modal", viewer_team_id=ws.team_id,
                                                            installed_team_id=ws.team_id)),
        "view_submission, unknown callback_id": samples.view_submission(
            me, samples.view("retired_form", viewer_team_id=ws.team_id, installed_team_id=ws.team_id)),
        "global shortcut, unknown callback_id": samples.global_shortcut(me, "retired_shortcut"),
        "message shortcut, unknown callback_id": samples.message_shortcut(
            me, "retired_message_shortcut", channel_id=channel, response_url=url),
        "block_suggestion": samples.block_suggestion(me, installed_team_id=ws.team_id),
        "unknown slash command": samples.slash_command(me, "/retired", channel_id=channel, response_url=url),
    }
    if visitor is not None:
        cases["Slack Connect message"] = samples.slack_connect_message(
            me, _side(visitor), bot_user_id=ws.bot_user_id, channel_id=channel)
    if org is not None:
        member = samples.Side(team_id=org.team_id, user_id=org.installer_user_id, enterprise_id=org.enterprise_id)
        cases["org-wide install message (team_id: null)"] = samples.org_wide_message(
            member, bot_user_id=org.bot_user_id, channel_id=org.default_channel_id)
        cases["org-wide install click (team: null)"] = samples.block_actions(
            member, samples.old_button_action(), channel_id=org.default_channel_id,
            response_url=standin.new_response_url(org.team_id), org_wide=True)
    return cases


def check_answer(name: str, body: dict, response, elapsed: float) -> None:
    assert response.status == 200, (name, response.status, response.body[:200])
    assert elapsed < 3, (name, elapsed)
    if body.get("type") == "block_suggestion":
        assert json.loads(response.body) == {"options": []}, name
    elif samples.encoding_of(body) == "form":
        answer = json.loads(response.body)
        assert answer["response_type"] == "ephemeral" and "no longer available" in answer["text"], (name, answer)
    else:
        assert response.body == b"", (name, response.body[:200])


def test_every_unhandled_kind_is_answered_200_with_what_slack_expects(live_app, standin, caplog) -> None:
    ws = _installed(live_app, standin, name="Plain Co")
    grid = standin.create_enterprise(name="Grid Org")
    org = standin.create_workspace(enterprise_id=grid.enterprise_id, name="Grid Sales")
    assert install(live_app.url, standin, org.team_id, org_install=True).response.status == 200
    visitor = standin.create_workspace(enterprise_id="E0VISITOR", name="Visitor Org")
    cases = unhandled_cases(standin, ws, org=standin.workspace(org.team_id), visitor=visitor)
    standin.clear_calls()

    with caplog.at_level(logging.INFO, logger="bolt_app.answers"):
        for name, body in cases.items():
            check_answer(name, body, *timed(standin, body))
        # The same kinds again: answered the same way, not logged again.
        for name, body in cases.items():
            check_answer(name, body, *timed(standin, body))

    logged = [r.getMessage() for r in caplog.records if r.name == "bolt_app.answers" and r.levelno == logging.INFO]
    assert len(logged) == len(set(logged)), logged
    for kind in ("event message", "event message/bot_message", "event message/message_changed", "block_actions",
                 "view_closed poll_create_modal", "view_submission retired_form", "shortcut retired_shortcut",
                 "message_action retired_message_shortcut", "block_suggestion", "command /retired"):
        assert sum(kind + ":" in line for line in logged) == 1, (kind, logged)
    # Nothing was posted anywhere: an unhandled request does no work.
    assert [c for c in standin.calls if c.method != "oauth.v2.access"] == []
    assert standin.responses() == []


def test_malformed_or_unsigned_input_keeps_its_4xx(live_app, standin) -> None:
    ws = _installed(live_app, standin, name="Strict Co")
    body = samples.block_suggestion(_side(ws), installed_team_id=ws.team_id)
    raw = json.dumps({"payload": json.dumps(body)})
    assert standin.post_to_app(raw, "json", headers={"X-Slack-Signature": "v0=" + "0" * 64}).status == 401
    for broken in ({**body, "action_id": 7}, {**body, "user": "nobody"}, {**body, "view": "V1"}):
        assert samples.send(standin, broken).status == 400, broken
    assert standin.post_to_app(b"payload=%7Bnot-json", "form").status == 400

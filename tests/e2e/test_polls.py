"""Polls end to end: the real server process (gunicorn, two workers) against the Slack stand-in,
for two workspaces at once, asserting the Web API calls the app makes (method, the workspace
whose token made it, payload)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from bolt_app import database
from bolt_app.features.polls import blocks
from bolt_app.features.polls.tables import poll_votes, polls
from tests.listeners import payloads
from tests.support import install, wait_for


class Calls:
    """Web API calls the stand-in received after a mark, per method and workspace."""

    def __init__(self, standin):
        self.standin = standin
        self.mark = len(standin.calls)

    def reset(self) -> None:
        self.mark = len(self.standin.calls)

    def of(self, method: str, ws, *, ok: bool | None = True) -> list:
        return [
            c
            for c in self.standin.calls[self.mark :]
            if c.method == method and c.team_id == ws.team_id and (ok is None or c.ok == ok)
        ]

    def wait(self, method: str, ws, count: int = 1, *, ok: bool | None = True) -> list:
        found = wait_for(lambda: len(self.of(method, ws, ok=ok)) >= count and self.of(method, ws, ok=ok))
        assert found and len(found) >= count, (method, ws.team_id, self.standin.calls[self.mark :])
        return found


def assert_bot_token_of(call, ws) -> None:
    assert call.token_kind == "bot" and call.team_id == ws.team_id, call


def rows(url: str, table: sa.Table, **where) -> list:
    engine = database.create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            query = sa.select(table)
            for column, value in where.items():
                query = query.where(table.c[column] == value)
            return conn.execute(query).all()
    finally:
        engine.dispose()


def latest_view(standin, ws, via: str) -> dict:
    views = [v for v in standin.views(ws.team_id) if v["via"] == via]
    assert views, standin.views(ws.team_id)
    return views[-1]


def post_poll_with_command(standin, calls: Calls, ws, text: str) -> tuple[str, str, dict]:
    """`/poll "…" "…"`: returns (poll id, message ts, chat.postMessage params)."""
    calls.reset()
    assert standin.send_slash_command(ws, "/poll", text).status == 200
    posted = calls.wait("chat.postMessage", ws)[-1]
    assert_bot_token_of(posted, ws)
    poll_id = payloads.vote_buttons(posted.params)[0]["value"].split(":")[0]
    return poll_id, posted_ts(standin, ws, posted.params["text"]), posted.params


def posted_ts(standin, ws, text: str) -> str:
    ts = wait_for(lambda: next((m["ts"] for m in reversed(standin.messages(ws.team_id)) if m["text"] == text), None))
    assert ts, standin.messages(ws.team_id)
    return ts


def message(standin, ws, ts: str) -> dict:
    return next(m for m in standin.messages(ws.team_id) if m["ts"] == ts)


def wait_message(standin, ws, ts: str, *needles: str, absent: tuple[str, ...] = ()) -> str:
    def check() -> str | None:
        text = payloads.all_text(message(standin, ws, ts)["blocks"])
        return text if all(n in text for n in needles) and not any(a in text for a in absent) else None

    text = wait_for(check)
    assert text, payloads.all_text(message(standin, ws, ts)["blocks"])
    return text


def test_every_poll_flow_in_two_workspaces(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    first, second = standin.create_workspace(name="Acme"), standin.create_workspace(name="Globex")
    for ws in (first, second):
        assert install(server.url, standin, ws.team_id).response.status == 200
    calls = Calls(standin)
    for ws in (first, second):
        creator, voter = ws.installer_user_id, standin.add_user(ws.team_id)

        # /poll help and bad text: an ephemeral answer right in the acknowledgement.
        help_reply = standin.send_slash_command(ws, "/poll", "help")
        assert help_reply.status == 200 and "/poll" in help_reply.json()["text"]
        bad = standin.send_slash_command(ws, "/poll", "Lunch? Pizza Sushi").json()
        assert "quotes" in bad["text"] and "/poll" in bad["text"] and bad.get("response_type", "ephemeral") == "ephemeral"

        # /poll with no text opens the modal, preset to the channel it was typed in.
        calls.reset()
        assert standin.send_slash_command(ws, "/poll", "").status == 200
        opened = calls.wait("views.open", ws)[0]
        assert_bot_token_of(opened, ws)
        modal = latest_view(standin, ws, "views.open")
        assert modal["callback_id"] == blocks.MODAL_CALLBACK_ID
        channel_select = next(b for b in modal["blocks"] if b["block_id"] == blocks.B_CHANNEL)["element"]
        assert channel_select["initial_conversation"] == ws.default_channel_id

        # Invalid submission: inline errors, nothing posted.
        invalid = standin.send_interactive(
            ws, payloads.view_submission(ws.team_id, creator, modal, payloads.modal_values("", "Only one"))
        ).json()
        assert invalid["response_action"] == "errors"
        assert set(invalid["errors"]) == {blocks.B_QUESTION, blocks.B_OPTIONS, blocks.B_CHANNEL}
        duplicates = standin.send_interactive(ws, payloads.view_submission(
            ws.team_id, creator, modal, payloads.modal_values("Q", "A\na", channel_id=ws.default_channel_id))).json()
        assert "twice" in duplicates["errors"][blocks.B_OPTIONS]

        # Valid submission: the modal closes and the poll is posted with one button per option.
        calls.reset()
        values = payloads.modal_values(f"Lunch in {ws.name}?", "Pizza\nSushi\nTacos", channel_id=ws.default_channel_id)
        assert standin.send_interactive(ws, payloads.view_submission(ws.team_id, creator, modal, values)).status == 200
        posted = calls.wait("chat.postMessage", ws)[0]
        assert_bot_token_of(posted, ws)
        assert posted.params["channel"] == ws.default_channel_id
        buttons = payloads.vote_buttons(posted.params)
        assert [b["text"]["text"] for b in buttons] == ["Pizza", "Sushi", "Tacos"]
        poll_id = buttons[0]["value"].split(":")[0]
        ts = posted_ts(standin, ws, posted.params["text"])
        # The message's ts is stored once chat.postMessage has answered: wait for it.
        (row,) = wait_for(lambda: [r for r in rows(sqlite_url, polls, poll_id=poll_id) if r.message_ts])
        assert row.team_id == ws.team_id and row.message_ts == ts and row.creator_id == creator

        # Voting: recorded, the message updated with counts, bar and voter; a click again removes
        # it; single choice moves it.
        calls.reset()
        standin.send_interactive(ws, payloads.vote(ws.team_id, voter, poll_id, 0, ws.default_channel_id, ts))
        update = calls.wait("chat.update", ws)[0]
        assert_bot_token_of(update, ws)
        assert update.params["ts"] == ts and update.params["channel"] == ws.default_channel_id
        wait_message(standin, ws, ts, f"<@{voter}>", "1 vote", "100%")
        standin.send_interactive(ws, payloads.vote(ws.team_id, voter, poll_id, 1, ws.default_channel_id, ts))
        text = wait_message(standin, ws, ts, "*Sushi*\n`██████████` 100%")
        assert "*Pizza*\n`░░░░░░░░░░` 0%" in text
        standin.send_interactive(ws, payloads.vote(ws.team_id, voter, poll_id, 1, ws.default_channel_id, ts))
        wait_message(standin, ws, ts, "0 people voted", absent=(f"<@{voter}>",))
        assert rows(sqlite_url, poll_votes, poll_id=poll_id) == []

        # Directly from the command's text, anonymous: counts without names.
        quick_id, quick_ts, quick_params = post_poll_with_command(
            standin, calls, ws, '"Coffee or tea?" "Coffee" "Tea" --anonymous')
        assert "Anonymous" in payloads.all_text(quick_params["blocks"])
        standin.send_interactive(ws, payloads.vote(ws.team_id, voter, quick_id, 1, ws.default_channel_id, quick_ts))
        wait_message(standin, ws, quick_ts, "1 person voted", absent=(f"<@{voter}>",))

        # Closing: only the creator; others get an ephemeral refusal; closed polls take no votes.
        calls.reset()
        standin.send_interactive(ws, payloads.close(ws.team_id, voter, quick_id, ws.default_channel_id, quick_ts))
        refusal = calls.wait("chat.postEphemeral", ws)[0]
        assert_bot_token_of(refusal, ws)
        assert refusal.params["user"] == voter and refusal.params["text"] == blocks.NOT_CREATOR
        standin.send_interactive(ws, payloads.close(ws.team_id, creator, quick_id, ws.default_channel_id, quick_ts))
        wait_message(standin, ws, quick_ts, "Closed", "final results")
        assert payloads.vote_buttons({"blocks": message(standin, ws, quick_ts)["blocks"]}) == []
        calls.reset()
        standin.send_interactive(ws, payloads.vote(ws.team_id, voter, quick_id, 0, ws.default_channel_id, quick_ts))
        assert calls.wait("chat.postEphemeral", ws)[0].params["text"] == blocks.POLL_CLOSED
        assert len(rows(sqlite_url, poll_votes, poll_id=quick_id)) == 1

        # App Home: the user's open and closed polls with results, and "Create poll".
        calls.reset()
        standin.send_event(ws, payloads.app_home_opened(creator))
        published = calls.wait("views.publish", ws)[0]
        assert_bot_token_of(published, ws)
        assert published.params["user_id"] == creator
        home = latest_view(standin, ws, "views.publish")
        home_text = payloads.all_text(home["blocks"])
        assert f"Lunch in {ws.name}?" in home_text and "Coffee or tea?" in home_text and "Recently closed" in home_text
        calls.reset()
        standin.send_interactive(ws, payloads.home_create(ws.team_id, creator, home))
        assert_bot_token_of(calls.wait("views.open", ws)[0], ws)

        # Shortcuts: global opens the modal; message shortcut prefills the question.
        calls.reset()
        standin.send_interactive(ws, payloads.global_shortcut(ws.team_id, creator))
        calls.wait("views.open", ws)
        calls.reset()
        standin.send_interactive(
            ws, payloads.message_shortcut(ws.team_id, creator, ws.default_channel_id, "Standup at 10 &amp; 11?"))
        calls.wait("views.open", ws)
        prefilled = latest_view(standin, ws, "views.open")
        question = next(b for b in prefilled["blocks"] if b["block_id"] == blocks.B_QUESTION)["element"]
        assert question["initial_value"] == "Standup at 10 & 11?"

        # app_mention: a short help message, in the thread.
        calls.reset()
        standin.send_mention(ws, "what can you do?")
        reply = calls.wait("chat.postMessage", ws)[0]
        assert_bot_token_of(reply, ws)
        assert reply.params["thread_ts"] and "/poll" in reply.params["text"]

    # Each workspace saw only its own polls.
    assert {r.team_id for r in rows(sqlite_url, polls)} == {first.team_id, second.team_id}
    assert "Traceback" not in server.logs()


def test_not_in_channel_tells_the_user_and_leaves_nothing(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    ws = standin.create_workspace()
    install(server.url, standin, ws.team_id)
    elsewhere = standin.create_channel(ws.team_id, "random")
    standin.set_bot_channels(ws.team_id, [ws.default_channel_id])
    calls = Calls(standin)

    # From the command's text: the response_url carries the ephemeral how-to.
    standin.send_slash_command(ws, "/poll", '"Q?" "A" "B"', channel=elsewhere)
    failed = calls.wait("chat.postMessage", ws, ok=False)[0]
    assert failed.error == "not_in_channel" and failed.params["channel"] == elsewhere
    told = wait_for(lambda: standin.responses(ws.team_id))
    assert told[0]["body"]["response_type"] == "ephemeral" and told[0]["channel_id"] == elsewhere
    assert "/invite @Workspace Helper" in told[0]["body"]["text"]

    # From the modal: Slack's response_url for the picked channel.
    standin.send_slash_command(ws, "/poll", "", channel=elsewhere)
    wait_for(lambda: [v for v in standin.views(ws.team_id) if v["via"] == "views.open"])
    modal = latest_view(standin, ws, "views.open")
    values = payloads.modal_values("Q2?", "A\nB", channel_id=elsewhere)
    standin.send_interactive(ws, payloads.view_submission(ws.team_id, ws.installer_user_id, modal, values))
    told = wait_for(lambda: len(standin.responses(ws.team_id)) == 2 and standin.responses(ws.team_id))
    assert told[1]["channel_id"] == elsewhere and "/invite" in told[1]["body"]["text"]

    assert rows(sqlite_url, polls) == []  # nothing half-created
    standin.set_bot_channels(ws.team_id, None)
    post_poll_with_command(standin, calls, ws, '"Q?" "A" "B"')  # after /invite it works
    assert len(rows(sqlite_url, polls)) == 1


def test_isolation_duplicates_retries_and_uninstall(standin, app_server_factory, sqlite_url) -> None:
    server = app_server_factory(sqlite_url)
    a, b = standin.create_workspace(name="Acme"), standin.create_workspace(name="Globex")
    for ws in (a, b):
        install(server.url, standin, ws.team_id)
    calls = Calls(standin)
    a_id, a_ts, _ = post_poll_with_command(standin, calls, a, '"Acme only?" "Yes" "No"')
    b_id, b_ts, _ = post_poll_with_command(standin, calls, b, '"Globex only?" "Yes" "No"')
    a_voter = standin.add_user(a.team_id)
    standin.send_interactive(a, payloads.vote(a.team_id, a_voter, a_id, 0, a.default_channel_id, a_ts))
    wait_message(standin, a, a_ts, f"<@{a_voter}>")
    a_revision = rows(sqlite_url, polls, poll_id=a_id)[0].revision

    # Workspace B names A's poll (vote and close, even as A's creator id): refused, nothing changes.
    calls.reset()
    intruder = b.installer_user_id
    standin.send_interactive(b, payloads.vote(b.team_id, intruder, a_id, 1, b.default_channel_id, a_ts))
    standin.send_interactive(b, payloads.close(b.team_id, a.installer_user_id, a_id, b.default_channel_id, a_ts))
    refusals = calls.wait("chat.postEphemeral", b, 2)
    assert all(r.params["text"] == blocks.POLL_NOT_FOUND for r in refusals)
    for refusal in refusals:
        assert_bot_token_of(refusal, b)
    assert calls.of("chat.update", a, ok=None) == [] and calls.of("chat.update", b, ok=None) == []
    (a_row,) = rows(sqlite_url, polls, poll_id=a_id)
    assert a_row.revision == a_revision and a_row.closed_at is None
    assert [(v.user_id, v.position) for v in rows(sqlite_url, poll_votes, poll_id=a_id)] == [(a_voter, 0)]

    # The same click delivered twice counts once.
    click = payloads.vote(b.team_id, intruder, b_id, 1, b.default_channel_id, b_ts)
    assert standin.send_interactive(b, click).status == 200
    assert standin.send_interactive(b, click).status == 200
    wait_message(standin, b, b_ts, f"<@{intruder}>")
    # Votes are stored after the click is answered: wait for the first, then make sure the
    # duplicate delivery did not add or toggle anything.
    assert wait_for(lambda: len(rows(sqlite_url, poll_votes, poll_id=b_id)) == 1)
    time.sleep(0.3)
    assert len(rows(sqlite_url, poll_votes, poll_id=b_id)) == 1
    different_click = payloads.vote(b.team_id, intruder, b_id, 1, b.default_channel_id, b_ts)
    standin.send_interactive(b, different_click)  # a new click (new action_ts) toggles it off
    wait_for(lambda: rows(sqlite_url, poll_votes, poll_id=b_id) == [])

    # A retried event (X-Slack-Retry-Num: 1) posts no second reply.
    calls.reset()
    mention = standin.send_mention(a, "help")
    calls.wait("chat.postMessage", a)
    retry = standin.send_event(a, mention.payload["event"], event_id=mention.payload["event_id"], retry_num=1)
    assert retry.status == 200
    other = standin.send_mention(a, "again")  # a new event is answered: the retry had its chance
    assert other.status == 200
    wait_for(lambda: len(calls.of("chat.postMessage", a)) >= 2)
    assert len(calls.of("chat.postMessage", a)) == 2
    assert [c.params["thread_ts"] for c in calls.of("chat.postMessage", a)] == [
        mention.payload["event"]["ts"], other.payload["event"]["ts"]]

    # Uninstall deletes the workspace's polls (same transaction as its tokens); B keeps its own.
    assert standin.send_event(a, {"type": "app_uninstalled"}).status == 200
    assert rows(sqlite_url, polls, workspace_key=f":{a.team_id}") == []
    assert rows(sqlite_url, poll_votes, workspace_key=f":{a.team_id}") == []
    assert len(rows(sqlite_url, polls, workspace_key=f":{b.team_id}")) == 1
    assert "Traceback" not in server.logs()

"""Poll domain over the database: toggles, moves, closing, idempotency, isolation, concurrency.

The backend-specific tests (locking, concurrency, uninstall) run on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bolt_app.features.idempotency import Deliveries, processed_deliveries
from bolt_app.features.polls.domain import (
    CloseOutcome,
    CommandKind,
    Draft,
    PollService,
    VoteOutcome,
    parse_command,
    validate,
)
from bolt_app.features.polls.tables import poll_options, poll_votes, polls
from bolt_app.features.workspace import WorkspaceRef

A = WorkspaceRef(None, "T0A")
B = WorkspaceRef(None, "T0B")
ORG = WorkspaceRef("E01", "T0C", is_enterprise_install=True)


def service(engine) -> PollService:
    return PollService(engine, Deliveries(engine))


def new_poll(svc: PollService, ws=A, *, multiple=False, options=("Pizza", "Sushi", "Tacos"), creator="U1"):
    poll = svc.create(ws, creator_id=creator, channel_id="C1", draft=Draft("Lunch?", tuple(options), False, multiple))
    assert poll is not None
    svc.attach_message(ws, poll.poll_id, "C1", "1700000000.000100")
    return poll


def count(engine, table, **where) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return int(conn.execute(query).scalar_one())


# --------------------------------------------------------------------------- pure input handling


@pytest.mark.parametrize(
    "text, kind",
    [
        ("", CommandKind.OPEN_MODAL),
        ("  ", CommandKind.OPEN_MODAL),
        ("help", CommandKind.HELP),
        ('"Lunch?" "Pizza" "Sushi"', CommandKind.CREATE),
        ("“Lunch?” “Pizza” “Sushi”", CommandKind.CREATE),  # macOS smart quotes
        ('"Lunch?" "Pizza"', CommandKind.INVALID),  # one option
        ("Lunch? Pizza Sushi", CommandKind.INVALID),  # unquoted
        ('"Lunch?" "Pizza" "Sushi', CommandKind.INVALID),  # unclosed quote
        ('"Lunch?" "Pizza" "pizza"', CommandKind.INVALID),  # duplicate
        ('"Q" ' + " ".join(f'"o{i}"' for i in range(11)), CommandKind.INVALID),  # 11 options
    ],
)
def test_parse_command(text: str, kind: CommandKind) -> None:
    parsed = parse_command(text)
    assert parsed.kind is kind
    if kind is CommandKind.INVALID:
        assert parsed.problem


def test_parse_command_flags_and_escapes() -> None:
    parsed = parse_command('"Fish &amp; chips?" "Yes" "No" --anonymous --multiple')
    assert parsed.kind is CommandKind.CREATE and parsed.draft is not None
    assert parsed.draft.question == "Fish & chips?"
    assert parsed.draft.options == ("Yes", "No")
    assert parsed.draft.anonymous and parsed.draft.multiple_choice


def test_validate_names_each_problem() -> None:
    assert validate("", ["a", "b"]) == {"question": "Write a question."}
    assert "300" in validate("x" * 301, ["a", "b"])["question"]
    assert "at least 2" in validate("Q", ["a", " "])["options"]
    assert "at most 10" in validate("Q", [str(i) for i in range(11)])["options"]
    assert "75" in validate("Q", ["a", "b" * 76])["options"]
    assert "twice" in validate("Q", ["Yes", "yes"])["options"]
    assert validate("Q", ["a", "b"]) == {}


# --------------------------------------------------------------------------- on every backend


def test_toggle_move_multiple_close_and_duplicate_delivery(engine) -> None:
    svc = service(engine)
    single = new_poll(svc)
    assert svc.vote(A, single.poll_id, 0, "U2").outcome is VoteOutcome.ADDED
    assert svc.vote(A, single.poll_id, 1, "U2").outcome is VoteOutcome.MOVED  # single choice: moved
    assert svc.results(A, single.poll_id).voters == ((), ("U2",), ())
    assert svc.vote(A, single.poll_id, 1, "U2").outcome is VoteOutcome.REMOVED  # clicked again: removed
    assert svc.results(A, single.poll_id).total_votes == 0
    assert svc.vote(A, single.poll_id, 7, "U2").outcome is VoteOutcome.NOT_FOUND  # no such option

    multi = new_poll(svc, multiple=True)
    for position in (0, 2):
        assert svc.vote(A, multi.poll_id, position, "U3").outcome is VoteOutcome.ADDED
    svc.vote(A, multi.poll_id, 2, "U4")
    results = svc.results(A, multi.poll_id)
    assert results.voters == (("U3",), (), ("U3", "U4")) and results.voter_count == 2

    # The same click delivered twice counts once (and says so).
    first = svc.vote(A, multi.poll_id, 1, "U5", delivery_key="action:U5:b:poll_vote_1:1.1")
    again = svc.vote(A, multi.poll_id, 1, "U5", delivery_key="action:U5:b:poll_vote_1:1.1")
    assert first.outcome is VoteOutcome.ADDED and again.outcome is VoteOutcome.DUPLICATE
    assert svc.results(A, multi.poll_id).counts == (1, 1, 2)

    # Every change bumps the revision renderers compare.
    before = svc.revision(A, multi.poll_id)
    assert svc.close(A, multi.poll_id, "U3") is CloseOutcome.NOT_CREATOR
    assert svc.close(A, multi.poll_id, "U1") is CloseOutcome.CLOSED
    assert svc.revision(A, multi.poll_id) == before + 1
    assert svc.close(A, multi.poll_id, "U1") is CloseOutcome.ALREADY_CLOSED
    assert svc.vote(A, multi.poll_id, 0, "U9").outcome is VoteOutcome.CLOSED
    closed = svc.results(A, multi.poll_id)
    assert closed.poll.is_closed and closed.counts == (1, 1, 2)  # final results kept


def test_another_workspace_can_neither_read_nor_change_a_poll(engine) -> None:
    svc = service(engine)
    poll = new_poll(svc, A)
    svc.vote(A, poll.poll_id, 0, "U2")
    snapshot = svc.results(A, poll.poll_id)

    # Workspace B names A's poll id: nothing found, nothing changed.
    assert svc.results(B, poll.poll_id) is None and svc.revision(B, poll.poll_id) is None
    assert svc.vote(B, poll.poll_id, 1, "U2").outcome is VoteOutcome.NOT_FOUND
    assert svc.close(B, poll.poll_id, "U1") is CloseOutcome.NOT_FOUND  # even as "the creator"
    svc.discard(B, poll.poll_id)
    assert svc.results(A, poll.poll_id) == snapshot

    # An org-wide install keys by the enterprise: the same poll from another workspace of the org.
    org_poll = new_poll(svc, ORG)
    other_workspace_of_org = WorkspaceRef("E01", "T0D", is_enterprise_install=True)
    assert svc.vote(other_workspace_of_org, org_poll.poll_id, 0, "U7").outcome is VoteOutcome.ADDED
    assert svc.results(WorkspaceRef("E01", "T0D"), org_poll.poll_id) is None  # not an org install: other key


def test_fifty_simultaneous_votes_are_all_counted(engine) -> None:
    svc = service(engine)
    poll = new_poll(svc, options=("Yes", "No"))
    multi = new_poll(svc, multiple=True, options=("a", "b", "c"))
    start = threading.Barrier(50)

    def vote(i: int) -> VoteOutcome:
        start.wait()
        # Half also click a second poll with the same delivery key twice, at the same moment.
        outcome = svc.vote(A, poll.poll_id, i % 2, f"U{i:03d}").outcome
        if i < 10:
            svc.vote(A, multi.poll_id, 0, "USAME", delivery_key="action:USAME:x:poll_vote_0:9.9")
        return outcome

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(vote, range(50)))
    assert outcomes == [VoteOutcome.ADDED] * 50
    results = svc.results(A, poll.poll_id)
    assert results.counts == (25, 25) and results.voter_count == 50
    assert svc.revision(A, poll.poll_id) == 50
    assert svc.results(A, multi.poll_id).counts == (1, 0, 0)  # ten deliveries of one click: one vote


def test_uninstall_hook_deletes_only_that_workspace(engine) -> None:
    deliveries = Deliveries(engine)
    svc = PollService(engine, deliveries)
    a_poll, b_poll = new_poll(svc, A), new_poll(svc, B)
    svc.vote(A, a_poll.poll_id, 0, "U2", delivery_key="action:1")
    svc.vote(B, b_poll.poll_id, 0, "U2", delivery_key="action:1")
    org_poll = new_poll(svc, ORG)
    with engine.begin() as conn:
        svc.delete_workspace(conn, None, "T0A")
        deliveries.delete_workspace(conn, None, "T0A")
        svc.delete_workspace(conn, "E01", None)  # org-wide uninstall: stored under the enterprise
    for table in (polls, poll_options, poll_votes, processed_deliveries):
        assert count(engine, table, workspace_key=A.key) == 0
        assert count(engine, table, workspace_key=ORG.key) == 0
    assert svc.results(B, b_poll.poll_id).counts == (1, 0, 0)
    assert count(engine, processed_deliveries, workspace_key=B.key) == 1
    assert org_poll.poll_id


# --------------------------------------------------------------------------- SQLite only


def test_discard_duplicate_create_and_stale_unposted_polls(sqlite_engine) -> None:
    svc = service(sqlite_engine)
    draft = Draft("Q?", ("a", "b"))
    poll = svc.create(A, creator_id="U1", channel_id="C1", draft=draft, delivery_key="view:V1")
    assert poll is not None
    assert svc.create(A, creator_id="U1", channel_id="C1", draft=draft, delivery_key="view:V1") is None
    svc.discard(A, poll.poll_id)
    assert count(sqlite_engine, polls) == 0 and count(sqlite_engine, poll_options) == 0

    # A row left without a message (the process died mid-post) is swept by a later create.
    orphan = svc.create(A, creator_id="U1", channel_id="C1", draft=draft)
    with sqlite_engine.begin() as conn:
        conn.execute(polls.update().values(created_at=polls.c.created_at - timedelta(hours=1)))
    svc.create(A, creator_id="U1", channel_id="C1", draft=draft)
    assert svc.results(A, orphan.poll_id) is None
    with pytest.raises(ValueError):
        svc.create(A, creator_id="U1", channel_id="C1", draft=Draft("", ("a",)))


def test_polls_of_lists_open_then_closed_posted_polls(sqlite_engine) -> None:
    svc = service(sqlite_engine)
    made = [new_poll(svc) for _ in range(4)]
    svc.create(A, creator_id="U1", channel_id="C1", draft=Draft("unposted", ("a", "b")))
    new_poll(svc, creator="U2")
    svc.close(A, made[0].poll_id, "U1")
    open_polls, closed = svc.polls_of(A, "U1", open_limit=2, closed_limit=5)
    assert len(open_polls) == 2 and all(not r.poll.is_closed for r in open_polls)
    assert [r.poll.poll_id for r in closed] == [made[0].poll_id]
    assert svc.count_open(A, "U1") == 3
    assert svc.polls_of(B, "U1", open_limit=5, closed_limit=5) == ([], [])

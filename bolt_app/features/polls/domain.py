"""Polls: create, vote, unvote, close, tally. Plain Python over the database, no Slack objects.

Every function takes the `WorkspaceRef` Bolt resolved for the request and filters every query
by its key, so a payload from workspace B naming a poll id of workspace A finds nothing.

Concurrency: every change to a poll runs in one write transaction that first locks the poll's
row (`SELECT … FOR UPDATE` on PostgreSQL/MariaDB, `BEGIN IMMEDIATE` on SQLite), so votes on one
poll are serialised by the database across threads, processes and hosts: 50 simultaneous
clicks give 50 votes. A click's idempotency key is inserted in that same transaction, so the
same click delivered twice counts once, and a transaction the database aborts (deadlock,
busy) is re-run whole. A transaction that inserts rows first holds the workspace's installation
(`Deliveries.gate`), so no row is stored for a workspace whose uninstall has committed.
"""

from __future__ import annotations

import enum
import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Optional, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import lock_rows, write_transaction
from bolt_app.features.idempotency import Deliveries
from bolt_app.features.polls.tables import poll_options, poll_votes, polls
from bolt_app.features.workspace import WorkspaceRef, retry_transient
from bolt_app.storage.tables import utc_now, workspace_key

MIN_OPTIONS = 2
MAX_OPTIONS = 10
QUESTION_MAX_CHARS = 300
OPTION_MAX_CHARS = 75  # a button's text limit: every option fits its button
# A poll row whose chat.postMessage never completed (the process died in between) is swept
# after this long; normally a failed post deletes its row at once.
UNPOSTED_TTL = timedelta(minutes=10)


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Draft:
    question: str
    options: tuple[str, ...]
    anonymous: bool = False
    multiple_choice: bool = False


def clean_options(lines: Iterable[str]) -> tuple[str, ...]:
    return tuple(line.strip() for line in lines if line and line.strip())


def validate(question: str, options: Sequence[str]) -> dict[str, str]:
    """Problems by field ("question", "options"); empty when the poll can be created."""
    errors: dict[str, str] = {}
    question = question.strip()
    if not question:
        errors["question"] = "Write a question."
    elif len(question) > QUESTION_MAX_CHARS:
        errors["question"] = f"Keep the question to {QUESTION_MAX_CHARS} characters (it has {len(question)})."
    options = clean_options(options)
    if len(options) < MIN_OPTIONS:
        errors["options"] = f"Give at least {MIN_OPTIONS} options."
    elif len(options) > MAX_OPTIONS:
        errors["options"] = f"Give at most {MAX_OPTIONS} options (there are {len(options)})."
    else:
        too_long = [i for i, o in enumerate(options, 1) if len(o) > OPTION_MAX_CHARS]
        folded = [o.casefold() for o in options]
        duplicates = [o for i, o in enumerate(options) if folded[i] in folded[:i]]
        if too_long:
            errors["options"] = f"Keep each option to {OPTION_MAX_CHARS} characters (option {too_long[0]} is longer)."
        elif duplicates:
            errors["options"] = f"“{duplicates[0]}” is listed twice: options must differ."
    return errors


class CommandKind(enum.Enum):
    OPEN_MODAL = "open_modal"
    HELP = "help"
    CREATE = "create"
    INVALID = "invalid"


@dataclass(frozen=True)
class ParsedCommand:
    kind: CommandKind
    draft: Optional[Draft] = None
    problem: Optional[str] = None


_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')
FLAGS = {"--anonymous": "anonymous", "--multiple": "multiple_choice"}


def parse_command(text: str) -> ParsedCommand:
    """`/poll` text: empty → modal; `help` → usage; `"Q" "A" "B" [--anonymous] [--multiple]` → a poll."""
    # Slack escapes &, < and > in command text; keep the plain characters (rendering escapes them).
    text = html.unescape((text or "").translate(_QUOTES)).strip()
    if not text:
        return ParsedCommand(CommandKind.OPEN_MODAL)
    if text.lower() in ("help", "-h", "--help", "?"):
        return ParsedCommand(CommandKind.HELP)
    if text.count('"') % 2:
        return ParsedCommand(CommandKind.INVALID, problem="A quotation mark is not closed.")
    parts: list[str] = []
    flags = {"anonymous": False, "multiple_choice": False}
    for quoted, bare in _TOKEN.findall(text):
        if bare:
            if bare.lower() not in FLAGS:
                return ParsedCommand(
                    CommandKind.INVALID, problem=f"Put the question and each option in quotes (`{bare}` is not)."
                )
            flags[FLAGS[bare.lower()]] = True
        else:
            parts.append(quoted)
    if not parts:
        return ParsedCommand(CommandKind.INVALID, problem="Give a question and at least two options.")
    question, options = parts[0].strip(), clean_options(parts[1:])
    errors = validate(question, options)
    if errors:
        return ParsedCommand(CommandKind.INVALID, problem=" ".join(errors.values()))
    return ParsedCommand(CommandKind.CREATE, Draft(question, options, **flags))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Poll:
    poll_id: str
    creator_id: str
    channel_id: str
    message_ts: Optional[str]
    question: str
    options: tuple[str, ...]
    anonymous: bool
    multiple_choice: bool
    revision: int
    created_at: datetime
    closed_at: Optional[datetime]

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None


@dataclass(frozen=True)
class PollResults:
    """A poll and, per option (in order), the users who voted for it, earliest first."""

    poll: Poll
    voters: tuple[tuple[str, ...], ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.voters)

    @property
    def total_votes(self) -> int:
        return sum(self.counts)

    @property
    def voter_count(self) -> int:
        return len({user for users in self.voters for user in users})


class VoteOutcome(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    MOVED = "moved"  # single choice: the user's earlier vote went to this option
    DUPLICATE = "duplicate"  # the same click delivered again: nothing changed
    CLOSED = "closed"
    NOT_FOUND = "not_found"  # no such poll in this workspace (or no such option)


class CloseOutcome(enum.Enum):
    CLOSED = "closed"
    ALREADY_CLOSED = "already_closed"
    NOT_CREATOR = "not_creator"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class VoteResult:
    outcome: VoteOutcome
    revision: Optional[int] = None

    @property
    def changed(self) -> bool:
        return self.outcome in (VoteOutcome.ADDED, VoteOutcome.REMOVED, VoteOutcome.MOVED)


def new_poll_id() -> str:
    # Random, not sequential: ids in button values reveal nothing and cannot be enumerated.
    return secrets.token_hex(8)


# --------------------------------------------------------------------------- service


class PollService:
    def __init__(self, engine: Engine, deliveries: Deliveries):
        self.engine = engine
        self.deliveries = deliveries

    # ------------------------------------------------------------------ writes

    def create(
        self,
        ws: WorkspaceRef,
        *,
        creator_id: str,
        channel_id: str,
        draft: Draft,
        delivery_key: Optional[str] = None,
    ) -> Optional[Poll]:
        """Store a new poll (no message yet). None when this delivery already created one."""
        errors = validate(draft.question, draft.options)
        if errors:
            raise ValueError("; ".join(errors.values()))
        options = clean_options(draft.options)
        poll_id = new_poll_id()
        now = utc_now()

        def work() -> bool:
            with write_transaction(self.engine) as conn:
                self._hold_installation(conn, ws)
                if not self.deliveries.claim(ws, delivery_key, conn=conn):
                    return False
                self._sweep_unposted(conn, ws, now)
                conn.execute(
                    polls.insert().values(
                        workspace_key=ws.key,
                        poll_id=poll_id,
                        enterprise_id=ws.enterprise_id,
                        team_id=ws.team_id,
                        creator_id=creator_id,
                        channel_id=channel_id,
                        message_ts=None,
                        question=draft.question.strip(),
                        anonymous=draft.anonymous,
                        multiple_choice=draft.multiple_choice,
                        revision=0,
                        created_at=now,
                        closed_at=None,
                    )
                )
                conn.execute(
                    poll_options.insert(),
                    [
                        {"workspace_key": ws.key, "poll_id": poll_id, "position": i, "text": text}
                        for i, text in enumerate(options)
                    ],
                )
                return True

        if not retry_transient(work):
            return None
        return Poll(poll_id, creator_id, channel_id, None, draft.question.strip(), options, draft.anonymous,
                    draft.multiple_choice, 0, now, None)

    def attach_message(self, ws: WorkspaceRef, poll_id: str, channel_id: str, message_ts: str) -> Optional[int]:
        """Record the posted message; returns the poll's revision (None if the poll is gone)."""
        c = polls.c
        with write_transaction(self.engine) as conn:
            conn.execute(
                polls.update()
                .where(c.workspace_key == ws.key, c.poll_id == poll_id)
                .values(channel_id=channel_id, message_ts=message_ts)
            )
            return conn.execute(
                sa.select(c.revision).where(c.workspace_key == ws.key, c.poll_id == poll_id)
            ).scalar_one_or_none()

    def discard(self, ws: WorkspaceRef, poll_id: str) -> None:
        """Delete a poll whose message could not be posted (nothing is left half-created)."""
        with write_transaction(self.engine) as conn:
            self._delete(conn, ws.key, poll_id)

    def vote(
        self, ws: WorkspaceRef, poll_id: str, position: int, user_id: str, *, delivery_key: Optional[str] = None
    ) -> VoteResult:
        """Toggle `user_id`'s vote for option `position`.

        Clicking your vote again removes it; in a single-choice poll a vote for another option
        moves it. The same delivery (`delivery_key`) counts once.
        """

        def work() -> VoteResult:
            with write_transaction(self.engine) as conn:
                self._hold_installation(conn, ws)
                row = self._lock_poll(conn, ws, poll_id)
                if row is None:
                    return VoteResult(VoteOutcome.NOT_FOUND)
                if not self.deliveries.claim(ws, delivery_key, conn=conn):
                    return VoteResult(VoteOutcome.DUPLICATE, row.revision)
                if row.closed_at is not None:
                    return VoteResult(VoteOutcome.CLOSED, row.revision)
                oc = poll_options.c
                exists = conn.execute(
                    sa.select(oc.position).where(
                        oc.workspace_key == ws.key, oc.poll_id == poll_id, oc.position == position
                    )
                ).first()
                if exists is None:
                    return VoteResult(VoteOutcome.NOT_FOUND)
                vc = poll_votes.c
                mine = poll_votes.delete().where(vc.workspace_key == ws.key, vc.poll_id == poll_id, vc.user_id == user_id)
                current = set(
                    conn.execute(
                        sa.select(vc.position).where(
                            vc.workspace_key == ws.key, vc.poll_id == poll_id, vc.user_id == user_id
                        )
                    ).scalars()
                )
                if position in current:
                    conn.execute(mine.where(vc.position == position))
                    outcome = VoteOutcome.REMOVED
                else:
                    outcome = VoteOutcome.ADDED
                    if current and not row.multiple_choice:
                        conn.execute(mine)
                        outcome = VoteOutcome.MOVED
                    conn.execute(
                        poll_votes.insert().values(
                            workspace_key=ws.key, poll_id=poll_id, position=position, user_id=user_id, voted_at=utc_now()
                        )
                    )
                return VoteResult(outcome, self._bump(conn, ws, poll_id, row.revision))

        return retry_transient(work)

    def close(self, ws: WorkspaceRef, poll_id: str, user_id: str) -> CloseOutcome:
        """Only the creator closes; a closed poll keeps its votes and takes no more."""

        def work() -> CloseOutcome:
            with write_transaction(self.engine) as conn:
                row = self._lock_poll(conn, ws, poll_id)
                if row is None:
                    return CloseOutcome.NOT_FOUND
                if row.creator_id != user_id:
                    return CloseOutcome.NOT_CREATOR
                if row.closed_at is not None:
                    return CloseOutcome.ALREADY_CLOSED
                c = polls.c
                conn.execute(
                    polls.update().where(c.workspace_key == ws.key, c.poll_id == poll_id).values(closed_at=utc_now())
                )
                self._bump(conn, ws, poll_id, row.revision)
                return CloseOutcome.CLOSED

        return retry_transient(work)

    # ------------------------------------------------------------------ reads

    def results(self, ws: WorkspaceRef, poll_id: str) -> Optional[PollResults]:
        found = self._results(ws.key, sa.and_(polls.c.poll_id == poll_id))
        return found[0] if found else None

    def revision(self, ws: WorkspaceRef, poll_id: str) -> Optional[int]:
        c = polls.c
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(c.revision).where(c.workspace_key == ws.key, c.poll_id == poll_id)
            ).scalar_one_or_none()

    def polls_of(self, ws: WorkspaceRef, creator_id: str, *, open_limit: int, closed_limit: int) -> tuple[
        list[PollResults], list[PollResults]
    ]:
        """The creator's open polls and most recently closed ones, newest first (posted ones only)."""
        c = polls.c
        base = sa.and_(c.creator_id == creator_id, c.message_ts.is_not(None))
        open_polls = self._results(ws.key, sa.and_(base, c.closed_at.is_(None)), limit=open_limit)
        closed = self._results(ws.key, sa.and_(base, c.closed_at.is_not(None)), limit=closed_limit)
        return open_polls, closed

    def count_open(self, ws: WorkspaceRef, creator_id: str) -> int:
        c = polls.c
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        c.workspace_key == ws.key, c.creator_id == creator_id, c.closed_at.is_(None),
                        c.message_ts.is_not(None),
                    )
                ).scalar_one()
            )

    def _results(self, key: str, where: sa.ColumnElement[bool], limit: Optional[int] = None) -> list[PollResults]:
        c, oc, vc = polls.c, poll_options.c, poll_votes.c
        query = sa.select(polls).where(c.workspace_key == key, where).order_by(c.created_at.desc(), c.poll_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            # The poll row (with its revision) is read before the votes: a render is never older
            # than the revision it reports, so comparing revisions after a send is safe.
            rows = conn.execute(query).all()
            if not rows:
                return []
            ids = [r.poll_id for r in rows]
            options: dict[str, list[str]] = {i: [] for i in ids}
            for o in conn.execute(
                sa.select(oc.poll_id, oc.text)
                .where(oc.workspace_key == key, oc.poll_id.in_(ids))
                .order_by(oc.poll_id, oc.position)
            ):
                options[o.poll_id].append(o.text)
            voters: dict[str, list[list[str]]] = {i: [[] for _ in options[i]] for i in ids}
            for v in conn.execute(
                sa.select(vc.poll_id, vc.position, vc.user_id)
                .where(vc.workspace_key == key, vc.poll_id.in_(ids))
                .order_by(vc.voted_at, vc.user_id)
            ):
                slots = voters[v.poll_id]
                if 0 <= v.position < len(slots):
                    slots[v.position].append(v.user_id)
        return [
            PollResults(
                Poll(
                    poll_id=r.poll_id,
                    creator_id=r.creator_id,
                    channel_id=r.channel_id,
                    message_ts=r.message_ts,
                    question=r.question,
                    options=tuple(options[r.poll_id]),
                    anonymous=bool(r.anonymous),
                    multiple_choice=bool(r.multiple_choice),
                    revision=r.revision,
                    created_at=r.created_at,
                    closed_at=r.closed_at,
                ),
                tuple(tuple(users) for users in voters[r.poll_id]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ uninstall

    def delete_workspace(self, conn: Connection, enterprise_id: Optional[str], team_id: Optional[str]) -> None:
        """Installation-store deletion hook: the workspace's polls go in the uninstall transaction."""
        key = workspace_key(enterprise_id, team_id)
        engine = conn.engine
        # Lock the polls first, in the order votes take their locks, so a vote arriving during the
        # uninstall waits instead of deadlocking with it.
        conn.execute(lock_rows(engine, sa.select(polls.c.poll_id).where(polls.c.workspace_key == key))).all()
        for table in (poll_votes, poll_options, polls):
            conn.execute(table.delete().where(table.c.workspace_key == key))

    # ------------------------------------------------------------------ helpers

    def _hold_installation(self, conn: Connection, ws: WorkspaceRef) -> None:
        """First in every transaction that inserts rows: the workspace must still be installed, and
        stays so until the commit (an uninstall waits, then deletes these rows too)."""
        if self.deliveries.gate is not None:
            self.deliveries.gate.require(conn, ws.key)

    def _lock_poll(self, conn: Connection, ws: WorkspaceRef, poll_id: str) -> Optional[sa.Row]:
        c = polls.c
        return conn.execute(
            lock_rows(self.engine, sa.select(polls).where(c.workspace_key == ws.key, c.poll_id == poll_id))
        ).first()

    @staticmethod
    def _bump(conn: Connection, ws: WorkspaceRef, poll_id: str, revision: int) -> int:
        c = polls.c
        conn.execute(
            polls.update().where(c.workspace_key == ws.key, c.poll_id == poll_id).values(revision=revision + 1)
        )
        return revision + 1

    @staticmethod
    def _delete(conn: Connection, key: str, poll_id: str) -> None:
        for table in (poll_votes, poll_options, polls):
            conn.execute(table.delete().where(table.c.workspace_key == key, table.c.poll_id == poll_id))

    def _sweep_unposted(self, conn: Connection, ws: WorkspaceRef, now: datetime) -> None:
        c = polls.c
        stale = conn.execute(
            sa.select(c.poll_id).where(
                c.workspace_key == ws.key, c.message_ts.is_(None), c.created_at < now - UNPOSTED_TTL
            )
        ).scalars().all()
        for poll_id in stale:
            self._delete(conn, ws.key, poll_id)

"""Deliveries are claimed once per workspace, inside the caller's transaction when given one."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bolt_app.database import write_transaction
from bolt_app.features.idempotency import Deliveries, action_key, event_key, processed_deliveries
from bolt_app.features.workspace import WorkspaceRef

A, B = WorkspaceRef(None, "T0A"), WorkspaceRef(None, "T0B")


def test_keys() -> None:
    assert event_key({"event_id": "Ev1"}) == "event:Ev1" and event_key({}) is None
    body = {"user": {"id": "U1"}}
    action = {"action_id": "poll_vote_0", "block_id": "b", "action_ts": "1.2"}
    assert action_key(body, action) == "action:U1:b:poll_vote_0:1.2"
    assert action_key(body, {**action, "action_ts": "1.3"}) != action_key(body, action)
    assert action_key({"user": {"id": "U2"}}, action) != action_key(body, action)
    assert action_key({}, action) is None


def test_claim_release_and_workspaces(engine) -> None:
    deliveries = Deliveries(engine)
    assert deliveries.claim(A, "event:Ev1")
    assert not deliveries.claim(A, "event:Ev1")  # Slack's retry
    assert deliveries.claim(B, "event:Ev1")  # another workspace's delivery is its own
    assert deliveries.claim(A, None) and deliveries.claim(A, None)  # nothing to deduplicate by
    deliveries.release(A, "event:Ev1")
    assert deliveries.claim(A, "event:Ev1")

    # In a transaction that rolls back, the claim goes with it.
    try:
        with write_transaction(engine) as conn:
            assert deliveries.claim(A, "view:V1", conn=conn)
            raise RuntimeError("the work failed")
    except RuntimeError:
        pass
    assert deliveries.claim(A, "view:V1")


def test_sweep_removes_only_old_rows(sqlite_engine) -> None:
    deliveries = Deliveries(sqlite_engine, retention=timedelta(hours=1))
    deliveries.claim(A, "event:old")
    with sqlite_engine.begin() as conn:
        conn.execute(processed_deliveries.update().values(received_at=processed_deliveries.c.received_at - timedelta(hours=2)))
    deliveries.claim(A, "event:new")
    assert deliveries.sweep() == 1
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(processed_deliveries)).scalar_one() == 1

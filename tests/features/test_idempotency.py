"""Deliveries are claimed once per workspace, inside the caller's transaction when given one."""

from __future__ import annotations

import threading
import time
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


def _claim_concurrently(engine, deliveries: Deliveries, keys: list[str], *, hold_first_commit: bool):  # type: ignore[no-untyped-def]
    """Claim every key from its own thread at once. With `hold_first_commit`, the first
    transaction waits until every other claim is queued behind it, so they must share one."""
    batcher = deliveries._batcher
    transactions = []

    def on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        transactions.append(conn)
        if hold_first_commit and len(transactions) == 1:
            deadline = time.monotonic() + 10
            while len(batcher._pending) < len(keys) - 1 and time.monotonic() < deadline:
                time.sleep(0.005)

    sa.event.listen(engine, "begin", on_begin)
    results: dict[int, object] = {}

    def claim(index: int) -> None:
        try:
            results[index] = deliveries.claim(A, keys[index])
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(keys))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sa.event.remove(engine, "begin", on_begin)
    return [results.get(i) for i in range(len(keys))], len(transactions)


def test_concurrent_claims_share_transactions_and_each_key_is_claimed_once(engine) -> None:
    deliveries = Deliveries(engine, sweep_every=10**9)
    assert deliveries.claim(A, "event:Ev0")  # already claimed before the burst
    # 10 keys, 3 threads each, plus the old one twice: duplicates inside one batch and across.
    keys = [f"event:Ev{n % 10}" for n in range(30)] + ["event:Ev0", "event:Ev0"]
    results, transactions = _claim_concurrently(engine, deliveries, keys, hold_first_commit=True)
    assert all(isinstance(r, bool) for r in results), results
    winners = {keys[i] for i, r in enumerate(results) if r is True}
    assert sum(r is True for r in results) == 9  # Ev1..Ev9 once each; Ev0 never again
    assert winners == {f"event:Ev{n}" for n in range(1, 10)}
    # The first transaction held the others back; they all went in the next one.
    assert transactions == 2
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(processed_deliveries)).scalar() == 10
    # And alone, a claim is still its own transaction with its own answer.
    assert deliveries.claim(A, "event:Ev10") and not deliveries.claim(A, "event:Ev10")


def test_a_failed_batch_fails_every_claim_in_it_and_the_next_batch_works(engine) -> None:
    deliveries = Deliveries(engine, sweep_every=10**9)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE processed_deliveries RENAME TO processed_deliveries_away"))
    try:
        results, _ = _claim_concurrently(engine, deliveries, [f"event:F{n}" for n in range(8)], hold_first_commit=True)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE processed_deliveries_away RENAME TO processed_deliveries"))
    assert all(isinstance(r, sa.exc.DBAPIError) for r in results), results
    assert deliveries.claim(A, "event:F0")  # nothing was half-claimed, and the batcher is not stuck

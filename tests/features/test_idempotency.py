"""Deliveries are claimed once per workspace, inside the caller's transaction when given one."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from bolt_app.database import write_transaction
from bolt_app.features.idempotency import ClaimHeld, Deliveries, action_key, event_key, processed_deliveries
from bolt_app.features.workspace import WorkspaceRef
from bolt_app.storage.tables import utc_now
from tests.support import deliveries_table_missing

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
    with deliveries_table_missing(engine):
        results, _ = _claim_concurrently(engine, deliveries, [f"event:F{n}" for n in range(8)], hold_first_commit=True)
    assert all(isinstance(r, sa.exc.DBAPIError) for r in results), results
    assert deliveries.claim(A, "event:F0")  # nothing was half-claimed, and the batcher is not stuck


def _expire_leases(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(processed_deliveries.update().where(processed_deliveries.c.claimed_until.is_not(None))
                     .values(claimed_until=utc_now() - timedelta(seconds=1)))


def test_without_a_queue_begin_claims_for_good(engine) -> None:
    deliveries = Deliveries(engine, sweep_every=10**9)
    claim = deliveries.begin(A, "event:Ev1")
    assert claim is not None and claim.token is None and deliveries.is_done(A, "event:Ev1")  # one write
    assert deliveries.begin(A, "event:Ev1") is None  # Slack's retry, or the original after it
    _expire_leases(engine)
    assert deliveries.begin(A, "event:Ev1") is None  # final: no lease to run out
    deliveries.abandon(claim)  # the work failed: a rerun (a refreshed token) may do it
    assert deliveries.begin(A, "event:Ev1") is not None


def test_a_lease_is_skipped_once_finished_and_taken_over_once_expired(engine) -> None:
    deliveries = Deliveries(engine, sweep_every=10**9)
    deliveries.retried = True
    first = deliveries.begin(A, "event:Ev1")
    assert first is not None and first.delivery_id is not None and first.token is not None
    try:
        deliveries.begin(A, "event:Ev1")
    except ClaimHeld:
        pass  # held by a live attempt
    else:
        raise AssertionError("a live lease was not reported")
    assert not deliveries.is_done(A, "event:Ev1")
    assert deliveries.begin(B, "event:Ev1") is not None  # another workspace's delivery is its own

    # The attempt died before finishing (a killed worker): once its lease is over, a re-run takes over.
    _expire_leases(engine)
    second = deliveries.begin(A, "event:Ev1")
    assert second is not None and second.token != first.token
    deliveries.finish(first)  # the dead attempt's token finishes nothing
    assert not deliveries.is_done(A, "event:Ev1")
    deliveries.finish(second)
    assert deliveries.is_done(A, "event:Ev1")
    _expire_leases(engine)
    assert deliveries.begin(A, "event:Ev1") is None  # done is done, whatever the time

    # A failed attempt gives its lease up: the retry does the work at once.
    third = deliveries.begin(A, "event:Ev2")
    assert third is not None
    deliveries.abandon(third)
    assert deliveries.begin(A, "event:Ev2") is not None

    # Claims made with claim() (work committed with its claim) are final for begin() too.
    assert deliveries.claim(A, "view:V1")
    assert deliveries.begin(A, "view:V1") is None and deliveries.is_done(A, "view:V1")
    assert deliveries.begin(A, None) == deliveries.begin(A, None)  # nothing to deduplicate by


def test_with_a_retrying_queue_a_live_lease_says_when_to_come_back(engine) -> None:
    deliveries = Deliveries(engine, sweep_every=10**9, lease=timedelta(seconds=30))
    deliveries.retried = True
    assert deliveries.begin(A, "event:Ev1") is not None
    try:
        deliveries.begin(A, "event:Ev1")
    except ClaimHeld as held:
        assert 20 <= held.retry_after <= 31
    else:
        raise AssertionError("a live lease was not reported")


def test_without_the_database_the_work_goes_ahead_unless_a_queue_retries_it(sqlite_engine) -> None:
    deliveries = Deliveries(sqlite_engine, sweep_every=10**9)
    with deliveries_table_missing(sqlite_engine):
        claim = deliveries.begin(A, "event:Ev1")
        assert claim is not None and claim.delivery_id is None  # unrecorded
        deliveries.finish(claim)
        deliveries.retried = True
        try:
            deliveries.begin(A, "event:Ev1")
        except sa.exc.DBAPIError:
            pass
        else:
            raise AssertionError("the error did not reach the queue")

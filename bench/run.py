"""Side-by-side benchmark: this app vs stock Bolt vs the bare floor, in ONE run.

All three run under the same gunicorn settings (gthread workers × threads) against the same
Slack stand-in with simulated Web API latency, on fresh databases of the same kind:

- floor: a bare WSGI app that verifies the Slack signature and answers 200 (bench/apps.py);
- stock: Bolt as its SQLAlchemy OAuth example configures it (bench/apps.py);
- app:   this app, started as users start it (`python main.py`).

Workloads: (a) installs through the OAuth flow, (b) a burst of app_mention events across many
workspaces, (c) /poll commands and vote clicks (this app only; stock has no polls), (d) the
rotation burst (all tokens due, events for them). Printed: events/s, ack latency p50/p95/p99,
Slack calls per event by method, database queries per event, ratios to stock and to floor.
Writes JSON to bench/results/ for history. Runs vary ±20 % on shared machines: compare ratios
within one run only.

The mention burst runs `--rounds` times per target (default 3), each time beside a burst to the
floor (which stays up for the whole run), floor first in one round and second in the next. Each
figure printed is the median over the rounds, and the ratios compare the app with the floor
bursts run beside it: one short burst alone moved a ratio by a third from one run to the next.

    python bench/run.py                       # defaults finish in a few minutes on 2 cores
    python bench/run.py --events 1000 --workspaces 50 --targets app,floor
    python bench/run.py --database postgresql # fresh PostgreSQL databases (TEST_POSTGRES_URL)
    python bench/run.py --scale               # also the 10 / 10 000 / 100 000 installations check
    python bench/run.py --targets app,floor --queue redis://127.0.0.1:6379/9   # replies via the task queue
"""

from __future__ import annotations

import argparse
import atexit
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bench.apps import create_stock_tables  # noqa: E402
from bench.loadgen import LoadResult, PreparedRequest, run_load  # noqa: E402
from bench.rotation_race import app_store, dead_refresh_tokens  # noqa: E402
from bolt_app import database  # noqa: E402
from bolt_app.diagnostics import read_query_total  # noqa: E402
from bolt_app.features.polls.blocks import VOTE_ACTION_PREFIX  # noqa: E402
from slack_standin import SlackStandIn  # noqa: E402
from slack_standin.harness import (  # noqa: E402
    PROJECT_ROOT,
    AppProcess,
    WorkerProcess,
    app_env,
    free_port,
    install,
    scratch_database,
    wait_for,
)

TARGETS = ("stock", "app", "queue", "floor")
# The app itself: lazy work on its threads ("app") or through the task queue ("queue", with --queue).
APP_TARGETS = ("app", "queue")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ databases and processes


def fresh_database(kind: str, workdir: Path, name: str) -> tuple[str, Callable[[], None]]:
    """A new empty database for one target, and how to drop it once the target is done."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{name}.db'}", lambda: None
    return scratch_database(kind, f"bench_{name}")


def start_target(target: str, standin: SlackStandIn, url: str, workdir: Path, args: argparse.Namespace) -> AppProcess:
    stats_dir = workdir / f"stats-{target}"
    stats_dir.mkdir(exist_ok=True)
    env = {
        **app_env(standin, url),
        "WEB_CONCURRENCY": str(args.workers),
        "WEB_THREADS": str(args.threads),
        "LOG_LEVEL": "WARNING",
        "QUERY_STATS_DIR": str(stats_dir),
    }
    port = free_port()
    command = None
    if target == "queue":
        env["TASK_QUEUE_URL"] = args.queue
    if target in APP_TARGETS:
        database.upgrade(database.create_engine(url, pool_size=1))
    else:
        if target == "stock":
            create_stock_tables(url)
        command = [
            sys.executable, "-m", "gunicorn", "--chdir", str(PROJECT_ROOT), "-k", "gthread",
            "-w", str(args.workers), "--threads", str(args.threads), "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", f"bench.apps:{target}_wsgi",
        ]
    process = AppProcess(env=env, workdir=workdir, port=port, command=command)
    process.stats_dir = stats_dir  # type: ignore[attr-defined]
    process.start(timeout=60)
    # With --queue, the app's replies are made by `python main.py worker` processes (stopped with it).
    process.queue_workers = []  # type: ignore[attr-defined]
    try:
        for n in range(args.queue_workers if target == "queue" else 0):
            worker = WorkerProcess(env={**env, "WORKER_THREADS": str(args.threads), "LOG_LEVEL": "INFO"},
                                   workdir=workdir, name=f"worker-{n}")
            process.queue_workers.append(worker.start())  # type: ignore[attr-defined]
    except BaseException:
        stop_target(process)
        raise
    return process


def stop_target(process: AppProcess) -> None:
    process.stop()
    for worker in getattr(process, "queue_workers", []):
        worker.stop()


def worker_rss_kib(master_pid: int) -> list[int]:
    """Resident memory of each gunicorn worker (a child of the master) together with the processes
    it started (multiprocessing's resource tracker, if any)."""
    parent_of: dict[int, int] = {}
    rss_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            parent_of[pid] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            status = (stat.parent / "status").read_text()
            rss_of[pid] = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        except (OSError, StopIteration, ValueError, IndexError):
            continue

    def tree(pid: int) -> int:
        return rss_of.get(pid, 0) + sum(tree(child) for child, parent in parent_of.items() if parent == pid)

    return sorted(tree(pid) for pid, parent in parent_of.items() if parent == master_pid)


def query_total(process: AppProcess) -> int:
    time.sleep(0.7)  # counts are flushed twice a second
    return read_query_total(str(process.stats_dir))  # type: ignore[attr-defined]


def settled_query_total(process: AppProcess, timeout: float = 30) -> int:
    """The query count once it stops growing: work after the answer (lazy functions, in lazy
    processes at a lower priority) is counted too."""
    total, deadline = query_total(process), time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = query_total(process)
        if latest == total:
            break
        total = latest
    return total


# ------------------------------------------------------------------ workloads


def prepared(standin: SlackStandIn, send) -> list[PreparedRequest]:  # type: ignore[no-untyped-def]
    with standin.capturing_requests() as captured:
        send()
    return [PreparedRequest("/slack/events", raw, headers) for raw, headers in captured]


def summarize(load: LoadResult, standin: SlackStandIn, queries: int | None, events: int) -> dict:
    methods = Counter(call.method for call in standin.calls)
    return {
        "events": events,
        "events_per_second": round(load.per_second, 1),
        "p50_ms": round(load.percentile(50) * 1000, 2),
        "p95_ms": round(load.percentile(95) * 1000, 2),
        "p99_ms": round(load.percentile(99) * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "slack_calls_per_event": {m: round(n / events, 3) for m, n in sorted(methods.items())},
        "db_queries_per_event": round(queries / events, 3) if queries is not None else None,
    }


def workload_installs(target: str, process: AppProcess, standin: SlackStandIn, teams: list, concurrency: int) -> dict:
    standin.clear_calls()
    before = query_total(process)
    started = time.time()
    latencies: list[float] = []

    def one(ws) -> int:  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        status = install(process.url, standin, ws.team_id).response.status
        latencies.append(time.perf_counter() - began)
        return status

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        statuses = Counter(pool.map(one, teams))
    seconds = time.time() - started
    latencies.sort()
    return {
        "installs": len(teams),
        "installs_per_second": round(len(teams) / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "statuses": {str(k): v for k, v in statuses.items()},
        "db_queries_per_install": round((query_total(process) - before) / len(teams), 2),
        "slack_calls_per_install": {m: round(n / len(teams), 2) for m, n in Counter(c.method for c in standin.calls).items()},
    }


def replies_done(standin: SlackStandIn, expected: int, timeout: float) -> int:
    def count() -> int:
        return sum(1 for c in standin.calls_for("chat.postMessage") if c.ok)

    wait_for(lambda: count() >= expected, timeout=timeout, interval=0.2)
    return count()


def burst(target: str, process: AppProcess, standin: SlackStandIn, requests: list[PreparedRequest], args) -> dict:  # type: ignore[no-untyped-def]
    """One measured burst of mentions; for stock and app, counted until every reply is posted."""
    standin.clear_calls()
    before = query_total(process) if target != "floor" else None
    started = time.perf_counter()
    load = run_load(process.url, requests, args.concurrency, args.loadgen_processes)
    result = {}
    if target != "floor":
        # Acknowledging is half the job: the events are done when their replies are posted.
        acked = load.statuses.get(200, 0)
        result["replies"] = replies_done(standin, acked, 120)
        done_seconds = time.perf_counter() - started
        result["replied_per_second"] = round(result["replies"] / done_seconds, 1)
        result["last_reply_after_last_ack_s"] = round(max(0.0, done_seconds - load.seconds), 2)
    queries = query_total(process) - before if before is not None else None
    result.update(summarize(load, standin, queries, len(requests)))
    return result


MEDIAN_FIGURES = ("events_per_second", "replied_per_second", "last_reply_after_last_ack_s",
                  "p50_ms", "p95_ms", "p99_ms", "db_queries_per_event")


def median_of_rounds(rounds: list[dict]) -> dict:
    """Each figure is its median over the rounds (every round is kept under "rounds"); statuses
    are summed, so a failure in any round shows."""
    by_rate = sorted(rounds, key=lambda r: r["events_per_second"])
    result = dict(by_rate[len(by_rate) // 2])
    for name in MEDIAN_FIGURES:
        values = [r[name] for r in rounds if r.get(name) is not None]
        if values:
            result[name] = round(statistics.median(values), 3)
    statuses: Counter = Counter()
    for r in rounds:
        statuses.update(r["statuses"])
    result["statuses"] = dict(sorted(statuses.items()))
    for name in ("events", "replies"):
        if name in result:
            result[name] = sum(r[name] for r in rounds)
    result["rounds"] = rounds
    return result


def bench_standin() -> SlackStandIn:
    """The Slack stand-in the benchmarks run against (its signing secret is the servers')."""
    return SlackStandIn(client_id="5555.6666", client_secret="bench-client-secret", signing_secret="bench-signing-secret")


def mention_requests(standin: SlackStandIn, teams: list, events: int, label: str) -> list[PreparedRequest]:
    """`events` signed mentions spread over `teams`. Each call makes fresh event ids: a replayed
    event would be (rightly) ignored as a duplicate."""
    return prepared(standin, lambda: [standin.send_mention(teams[i % len(teams)], text=f"{label}.{i}")
                                      for i in range(events)])


def warm_up(standin: SlackStandIn, teams: list, process: AppProcess, floor: AppProcess | None, concurrency: int,
            loadgen_processes: int, per_workspace: int = 1) -> None:
    """Not measured: `per_workspace` mentions per workspace (connection pools, caches), to the
    target until replied, then to the floor."""
    warm = prepared(standin, lambda: [standin.send_mention(ws, text="warm") for ws in teams * per_workspace])
    run_load(process.url, warm, concurrency, loadgen_processes)
    replies_done(standin, len(warm), 60)
    if floor is not None:
        run_load(floor.url, warm, concurrency, loadgen_processes)
    time.sleep(0.5)


def workload_mentions(target: str, process: AppProcess, standin: SlackStandIn, teams: list, args,  # type: ignore[no-untyped-def]
                      floor: AppProcess | None) -> tuple[dict, dict | None]:
    """`args.rounds` bursts of `args.events` mentions; with the floor, a floor burst beside each
    one, in alternating order, so both see the same moments of a shared machine."""
    warm_up(standin, teams, process, floor, args.concurrency, args.loadgen_processes)
    rounds, floor_rounds = [], []
    for n in range(args.rounds):
        requests = mention_requests(standin, teams, args.events, f"bench {n}")
        if floor is not None and n % 2 == 0:
            floor_rounds.append(burst("floor", floor, standin, requests, args))
        rounds.append(burst(target, process, standin, requests, args))
        if floor is not None and n % 2 == 1:
            floor_rounds.append(burst("floor", floor, standin, requests, args))
    return median_of_rounds(rounds), (median_of_rounds(floor_rounds) if floor_rounds else None)


def workload_polls(process: AppProcess, standin: SlackStandIn, teams: list, args) -> dict | None:  # type: ignore[no-untyped-def]
    """/poll commands, then vote clicks on the posted polls (this app only)."""
    polls_teams = teams[: min(len(teams), 20)]
    standin.clear_calls()
    commands = prepared(standin, lambda: [standin.send_slash_command(ws, "/poll", '"Lunch?" "Pizza" "Sushi" "Tacos"')
                                          for ws in polls_teams])
    command_load = run_load(process.url, commands, min(args.concurrency, len(commands)), 1)
    posted = wait_for(lambda: [c for c in standin.calls_for("chat.postMessage") if c.ok and c.params.get("blocks")]
                      if len([c for c in standin.calls_for("chat.postMessage") if c.ok]) >= len(polls_teams) else None,
                      timeout=30)
    if not posted:
        return None
    messages = []
    for ws in polls_teams:
        for message in standin.messages(ws.team_id):
            # One vote button per option, as each option section's accessory.
            buttons = [b["accessory"] for b in message.get("blocks") or []
                       if str((b.get("accessory") or {}).get("action_id", "")).startswith(VOTE_ACTION_PREFIX)]
            if buttons:
                messages.append((ws, message, buttons))
                break
    if not messages:
        return None
    clicks_per_poll = max(1, args.poll_clicks // len(messages))

    def send_clicks() -> None:
        for n in range(clicks_per_poll):
            for ws, message, buttons in messages:
                button = buttons[n % len(buttons)]
                user = standin.add_user(ws.team_id)
                standin.send_interactive(ws, {
                    "type": "block_actions",
                    "user": {"id": user},
                    "channel": {"id": message["channel"]},
                    "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"]},
                    "message": message,
                    "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "option",
                                 "value": button.get("value", ""), "action_ts": f"{time.time():.6f}"}],
                })

    clicks = prepared(standin, send_clicks)
    standin.clear_calls()
    before = query_total(process)
    load = run_load(process.url, clicks, args.concurrency, args.loadgen_processes)
    queries = settled_query_total(process) - before
    result = summarize(load, standin, queries, len(clicks))
    result["command_p99_ms"] = round(command_load.percentile(99) * 1000, 2)
    return result


def quiesce(standin: SlackStandIn, quiet_seconds: float = 1.0, timeout: float = 60.0) -> None:
    """Wait until the target made no Slack call for `quiet_seconds` (work left from the last workload)."""
    deadline = time.monotonic() + timeout
    seen = len(standin.calls)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now_seen = len(standin.calls)
        if now_seen != seen:
            seen, quiet_since = now_seen, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return


def workload_rotation(target: str, process: AppProcess, standin: SlackStandIn, url: str, teams: list, args) -> dict:  # type: ignore[no-untyped-def]
    """All tokens due at once (store and Slack agree), then a burst of events for them."""
    due = teams[: args.rotation_workspaces]
    quiesce(standin)  # the poll workload's last updates must not be the ones that meet the expired tokens
    for ws in due:
        standin.expire_tokens(team_id=ws.team_id)
    engine = database.create_engine(url, pool_size=1)
    past = "2000-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE slack_bots SET bot_token_expires_at = :past"), {"past": past})
        conn.execute(sa.text("UPDATE slack_installations SET bot_token_expires_at = :past"), {"past": past})
    requests = prepared(standin, lambda: [standin.send_mention(due[i % len(due)], text=f"rotate {i}")
                                          for i in range(args.rotation_events)])
    standin.clear_calls()
    load = run_load(process.url, requests, args.concurrency, args.loadgen_processes)
    acked = load.statuses.get(200, 0)
    replies = replies_done(standin, acked, 60)
    refreshes = [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
    engine.dispose()
    if target in APP_TARGETS:
        store = app_store(standin, url)
    else:
        from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

        store = SQLAlchemyInstallationStore(client_id=standin.client_id,
                                            engine=sa.create_engine(database.normalize_database_url(url)))
    dead = dead_refresh_tokens(store, standin, [ws.team_id for ws in due])
    return {
        "workspaces": len(due),
        "events": len(requests),
        "refresh_calls": len(refreshes),
        "refresh_calls_failed": sum(1 for c in refreshes if not c.ok),
        "ideal_refresh_calls": len(due),
        "failed_events": (len(requests) - acked) + max(0, acked - replies),
        "answered_200_without_reply": max(0, acked - replies),
        "dead_refresh_tokens": dead,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
    }


def workload_memory(process: AppProcess, standin: SlackStandIn, teams: list, args) -> dict:  # type: ignore[no-untyped-def]
    """RSS of each worker after every batch, once the batch's replies are done (so queued work is
    not mistaken for a leak): flat after warm-up means no per-event growth."""
    series = [sum(worker_rss_kib(process.process.pid))]  # type: ignore[union-attr]
    sent = 0
    while sent < args.memory_events:
        batch = min(2500, args.memory_events - sent)
        requests = prepared(standin, lambda: [standin.send_mention(teams[(sent + i) % len(teams)], text="mem")
                                              for i in range(batch)])
        standin.clear_calls()
        load = run_load(process.url, requests, args.concurrency, args.loadgen_processes)
        replies_done(standin, load.statuses.get(200, 0), 120)
        sent += batch
        series.append(sum(worker_rss_kib(process.process.pid)))  # type: ignore[union-attr]
    return {"events": sent, "batch": 2500, "total_worker_rss_kib_series": series,
            "growth_after_first_batch_kib": series[-1] - series[1] if len(series) > 2 else None}


# ------------------------------------------------------------------ report


def workload_kill(process: AppProcess, standin: SlackStandIn, teams: list, workdir: Path, args) -> dict:  # type: ignore[no-untyped-def]
    """The kill scenario (bench/kill.py) against this app, with workers of its own."""
    from bench.kill import run_kill
    from bolt_app.background import TaskQueue

    for worker in process.queue_workers:  # type: ignore[attr-defined]
        worker.stop()
    quiesce(standin)
    standin.request_url = f"{process.url}/slack/events"
    started: list[WorkerProcess] = []

    def start_worker() -> WorkerProcess:
        worker = WorkerProcess(env={**process.env, "WORKER_THREADS": "4", "LOG_LEVEL": "INFO"},
                               workdir=workdir, name=f"kill-worker-{len(started)}")
        started.append(worker.start())
        return worker

    try:
        figures = run_kill(standin, teams[:args.kill_workspaces], start_worker, mentions=args.kill_mentions,
                           threads=4, waiting=TaskQueue(args.queue).waiting)
    finally:
        for worker in started:
            worker.stop()
    print(figures.summary(), flush=True)
    return {"mentions": figures.mentions, "answered_200": len(figures.acknowledged),
            "without_reply": len(figures.unreplied), "duplicates": figures.duplicates,
            "rerun_first_s": round(figures.rerun_first_s, 1), "rerun_last_s": round(figures.rerun_last_s, 1)}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def print_report(results: dict, args: argparse.Namespace) -> None:
    print()
    print(f"Benchmark: {args.workers} gthread workers x {args.threads} threads, Slack latency {args.latency * 1000:.0f} ms, "
          f"{args.workspaces} workspaces, {args.events} mentions at concurrency {args.concurrency}, database {args.database}"
          + (f"; queue: the app with its lazy work via the task queue, {args.queue_workers} worker(s) x "
             f"{args.threads} threads" if args.queue else ""))
    rows = [("target", "events/s", "replied/s", "p50 ms", "p95 ms", "p99 ms", "db q/event", "slack calls/event", "statuses")]
    for target in TARGETS:
        m = results.get(target, {}).get("mentions")
        if not m:
            continue
        calls = ", ".join(f"{k} {v}" for k, v in m["slack_calls_per_event"].items()) or "-"
        rows.append((target, f"{m['events_per_second']}", f"{m.get('replied_per_second', '-')}", f"{m['p50_ms']}", f"{m['p95_ms']}", f"{m['p99_ms']}",
                     "-" if m["db_queries_per_event"] is None else f"{m['db_queries_per_event']}", calls,
                     json.dumps(m["statuses"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("\n(b) mentions")
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
    app, stock, floor = results.get("app", {}).get("mentions"), results.get("stock", {}).get("mentions"), results.get("floor", {}).get("mentions")
    if app:
        print("  ratios: app/stock events/s {}   app/floor events/s {}   app p99 / floor p99 {}".format(
            ratio(app["events_per_second"], (stock or {}).get("events_per_second")),
            ratio(app["events_per_second"], (floor or {}).get("events_per_second")),
            ratio(app["p99_ms"], (floor or {}).get("p99_ms"))))
        print("  replied/s counts events until their reply was posted; last reply after the last answer: " + ", ".join(
            f"{t} {results[t]['mentions']['last_reply_after_last_ack_s']} s" for t in ("stock", "app", "queue")
            if "last_reply_after_last_ack_s" in results.get(t, {}).get("mentions", {})))
        print("  replied/s ratio app/stock {}".format(
            ratio(app.get("replied_per_second"), (stock or {}).get("replied_per_second"))))
    queue = results.get("queue", {}).get("mentions")
    if queue:
        # Against the floor bursts run beside the queue target's own.
        queue_floor = results.get("floor", {}).get("mentions_beside", {}).get("queue") or {}
        print("  ratios (task queue): queue/stock events/s {}   queue/floor events/s {}   queue p99 / floor p99 {}"
              "   last reply {} s after the last answer".format(
                  ratio(queue["events_per_second"], (stock or {}).get("events_per_second")),
                  ratio(queue["events_per_second"], queue_floor.get("events_per_second")),
                  ratio(queue["p99_ms"], queue_floor.get("p99_ms")), queue.get("last_reply_after_last_ack_s")))
    print("\n(a) installs")
    for target in ("stock", "app", "queue"):
        i = results.get(target, {}).get("installs")
        if i:
            print(f"  {target:6} {i['installs_per_second']} installs/s, p50 {i['p50_ms']} ms, p99 {i['p99_ms']} ms, "
                  f"db queries/install {i['db_queries_per_install']}, slack calls/install {i['slack_calls_per_install']}")
    p = results.get("app", {}).get("polls")
    print("\n(c) poll votes (button clicks)")
    if p:
        f = results.get("floor", {}).get("mentions") or {}
        print(f"  app    {p['events_per_second']} clicks/s, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
              f"db q/click {p['db_queries_per_event']}, slack calls/click {p['slack_calls_per_event']}  "
              f"(app/floor {ratio(p['events_per_second'], f.get('events_per_second'))}; stock has no polls)")
    else:
        print("  skipped (no /poll listener in this build)")
    print("\n(d) rotation burst")
    for target in ("stock", "app", "queue"):
        r = results.get(target, {}).get("rotation")
        if r:
            print(f"  {target:6} refresh calls {r['refresh_calls']} (ideal {r['ideal_refresh_calls']}, failed "
                  f"{r['refresh_calls_failed']}), failed events {r['failed_events']} of {r['events']} "
                  f"(200 without reply {r['answered_200_without_reply']}), dead refresh tokens {r['dead_refresh_tokens']}")
    mem = results.get("app", {}).get("memory")
    if mem:
        print(f"\nmemory: total RSS of the workers and their child processes (KiB) after each batch of {mem['batch']} events: "
              f"{mem['total_worker_rss_kib_series']}; growth after the first batch "
              f"{mem['growth_after_first_batch_kib']} KiB over {mem['events'] - mem['batch']} events")
    if "scale" in results:
        from bench.scale import print_scale

        print_scale(results["scale"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--database", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workspaces", type=int, default=200)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="bursts per target (medians reported), each beside a floor burst")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated Slack Web API latency (s)")
    parser.add_argument("--install-concurrency", type=int, default=8)
    parser.add_argument("--poll-clicks", type=int, default=1000)
    parser.add_argument("--rotation-workspaces", type=int, default=20)
    parser.add_argument("--rotation-events", type=int, default=400)
    parser.add_argument("--memory-events", type=int, default=0, help="e.g. 20000: RSS before/after that many events")
    parser.add_argument("--loadgen-processes", type=int, default=2)
    parser.add_argument("--scale", action="store_true", help="also run the installation-count scale check (PostgreSQL)")
    parser.add_argument("--scale-sizes", default="10,10000,100000")
    parser.add_argument("--json", type=Path, default=None, help="default: bench/results/<time>.json")
    parser.add_argument("--queue", metavar="REDIS_URL", default=None,
                        help="the app enqueues its lazy work to this (empty) Redis database, emptied after the run")
    parser.add_argument("--queue-workers", type=int, default=2, help="with --queue: `python main.py worker` processes")
    parser.add_argument("--kill", action="store_true",
                        help="with --queue: after the workloads, the kill scenario (bench/kill.py): 600 mentions over "
                             "20 workspaces, one of two workers killed with SIGKILL after a third of the replies")
    parser.add_argument("--kill-mentions", type=int, default=600)
    parser.add_argument("--kill-workspaces", type=int, default=20)
    args = parser.parse_args()
    if args.kill and not args.queue:
        raise SystemExit("--kill needs --queue REDIS_URL")
    targets = [t for t in args.targets.split(",") if t]
    if args.queue and "queue" not in targets:
        targets.insert(targets.index("app") + 1 if "app" in targets else 0, "queue")
    if "queue" in targets and not args.queue:
        raise SystemExit("the queue target needs --queue REDIS_URL")
    if args.queue:
        import redis

        queue_db = redis.Redis.from_url(args.queue)
        if queue_db.dbsize():
            raise SystemExit(f"--queue: the Redis database {args.queue} is not empty; name an empty one")
        atexit.register(queue_db.flushdb)  # emptied again however the run ends

    results: dict = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    measured = [t for t in targets if t != "floor"]
    if not measured:
        raise SystemExit("the floor is measured beside stock or app: list at least one of them")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, bench_standin() as standin:
        workdir = Path(tmp)
        teams = [standin.create_workspace(name=f"Bench {n}") for n in range(args.workspaces)]
        floor = None
        if "floor" in targets:
            # Up for the whole run (it holds no state and reads no database): its bursts run
            # beside each target's.
            floor = start_target("floor", standin, f"sqlite:///{workdir / 'floor.db'}", workdir, args)
        try:
            for target in measured:
                print(f"== {target}", flush=True)
                standin.latency_seconds = 0.0
                url, drop_database = fresh_database(args.database, workdir, target)
                process = start_target(target, standin, url, workdir, args)
                target_results: dict = {}
                try:
                    standin.latency_seconds = args.latency
                    target_results["installs"] = workload_installs(target, process, standin, teams, args.install_concurrency)
                    target_results["mentions"], beside = workload_mentions(target, process, standin, teams, args, floor)
                    if beside is not None:
                        results.setdefault("floor", {}).setdefault("mentions_beside", {})[target] = beside
                    if target in APP_TARGETS:
                        polls = workload_polls(process, standin, teams, args)
                        if polls:
                            target_results["polls"] = polls
                    target_results["rotation"] = workload_rotation(target, process, standin, url, teams, args)
                    if target in APP_TARGETS and args.memory_events:
                        target_results["memory"] = workload_memory(process, standin, teams, args)
                    if target == "queue" and args.kill:
                        target_results["kill"] = workload_kill(process, standin, teams, workdir, args)
                finally:
                    stop_target(process)
                    drop_database()
                results[target] = target_results
                print(json.dumps({k: v for k, v in target_results["mentions"].items() if k != "rounds"}), flush=True)
        finally:
            if floor is not None:
                floor.stop()
        if "floor" in results:
            # The floor's row and the ratios use the floor bursts run beside the app's (or stock's).
            beside = results["floor"]["mentions_beside"]
            results["floor"]["mentions"] = beside.get("app") or beside.get("queue") or beside.get("stock")
    if args.scale:
        from bench.scale import run_scale

        results["scale"] = run_scale([int(s) for s in args.scale_sizes.split(",")])
    print_report(results, args)
    out = args.json or RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nJSON written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

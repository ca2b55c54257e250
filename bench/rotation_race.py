"""Rotation race: many events for workspaces whose tokens all fall due at once.

Starts the Slack stand-in (strictly single-use refresh tokens) and N real app servers on one
database, installs W workspaces through the OAuth flow, then, for each round, expires every
token and fires a burst of signed `app_mention` events across the servers from many threads.

Prints refresh calls made vs ideal (one per workspace per round), failed events (not answered
200, or no reply), and dead refresh tokens left in the database. Exit code 1 if any is off.

    python bench/rotation_race.py --servers 2 --workers 2 --threads 8 --workspaces 20 --events 400
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bolt_app import database  # noqa: E402
from slack_standin import SlackStandIn  # noqa: E402
from slack_standin.harness import AppProcess, app_env, install, wait_for  # noqa: E402
from bolt_app.storage import tables  # noqa: E402
from bolt_app.storage.tables import to_db_time  # noqa: E402


@dataclass
class RaceResult:
    servers: int
    workers_per_server: int
    threads_per_worker: int
    workspaces: int
    events: int
    rounds: int
    pattern: str
    refresh_calls: int = 0
    refresh_calls_failed: int = 0
    ideal_refresh_calls: int = 0
    events_not_acked: int = 0
    events_without_reply: int = 0
    dead_refresh_tokens: int = 0
    statuses: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed_events(self) -> int:
        return self.events_not_acked + self.events_without_reply

    @property
    def ok(self) -> bool:
        return (
            self.refresh_calls == self.ideal_refresh_calls
            and self.refresh_calls_failed == 0
            and self.failed_events == 0
            and self.dead_refresh_tokens == 0
        )


def _expire_in_store(database_url: str) -> None:
    """The store's clock says every token has expired (the proactive refresh path)."""
    engine = database.create_engine(database_url, pool_size=1)
    past = to_db_time(time.time() - 60)
    with engine.begin() as conn:
        conn.execute(tables.bots.update().values(bot_token_expires_at=past))
        conn.execute(tables.installations.update().values(bot_token_expires_at=past))
    engine.dispose()


def dead_refresh_tokens(installation_store, standin: SlackStandIn, team_ids: list[str]) -> int:  # type: ignore[no-untyped-def]
    """Workspaces whose stored bot refresh token Slack would no longer accept (read through the
    store, so encrypted columns are decrypted the way the app reads them)."""
    dead = 0
    for team_id in team_ids:
        bot = installation_store.find_bot(enterprise_id=None, team_id=team_id)
        info = standin.token_info(bot.bot_refresh_token) if bot and bot.bot_refresh_token else None
        if info is None or not info.get("alive", False):
            dead += 1
    return dead


def app_store(standin: SlackStandIn, database_url: str):  # type: ignore[no-untyped-def]
    """The app's installation store on that database, configured as the servers are."""
    from bolt_app.app import create_app
    from bolt_app.settings import load_settings

    return create_app(load_settings(app_env(standin, database_url))).installation_store


def run_rotation_race(
    *,
    database_url: str,
    workdir: Path,
    servers: int = 2,
    workers: int = 2,
    threads: int = 8,
    workspaces: int = 20,
    events: int = 400,
    rounds: int = 3,
    concurrency: int = 32,
    pattern: str = "spread",
    latency: float = 0.02,
    reply_timeout: float = 60.0,
) -> RaceResult:
    result = RaceResult(servers, workers, threads, workspaces, events, rounds, pattern)
    with SlackStandIn(client_id="9999.1111", client_secret="race-client-secret", signing_secret="race-signing-secret") as standin:
        database.upgrade(database.create_engine(database_url, pool_size=1))
        env = {**app_env(standin, database_url), "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads),
               "LOG_LEVEL": "WARNING"}
        processes = [AppProcess(env=env, workdir=workdir) for _ in range(servers)]
        try:
            for process in processes:
                process.start(timeout=60)
            teams = [standin.create_workspace(name=f"Race {n}") for n in range(workspaces)]
            for ws in teams:
                response = install(processes[0].url, standin, ws.team_id).response
                if response.status != 200:
                    raise RuntimeError(f"install failed: {response.status}")
            standin.latency_seconds = latency
            started = time.time()
            for _ in range(rounds):
                standin.expire_tokens()  # Slack's side: the old access tokens are dead...
                _expire_in_store(database_url)  # ...and the store knows they are due.
                standin.clear_calls()
                if pattern == "spread":
                    order = [teams[i % workspaces] for i in range(events)]
                else:  # each workspace's events back to back
                    per = max(1, events // workspaces)
                    order = [ws for ws in teams for _ in range(per)][:events]

                def deliver(index: int) -> tuple[int, str]:
                    ws = order[index]
                    with standin.delivering_to(processes[index % servers].events_url):
                        sent = standin.send_mention(ws, text=f"race {index}")
                    return sent.status, sent.payload["event"]["ts"]

                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    delivered = list(pool.map(deliver, range(len(order))))
                statuses = Counter(status for status, _ in delivered)
                for status, count in statuses.items():
                    result.statuses[str(status)] = result.statuses.get(str(status), 0) + count
                result.events_not_acked += sum(count for status, count in statuses.items() if status != 200)

                acked = {ts for status, ts in delivered if status == 200}

                def replied() -> set[str]:
                    return {c.params.get("thread_ts") for c in standin.calls_for("chat.postMessage") if c.ok}

                wait_for(lambda: acked <= replied(), timeout=reply_timeout, interval=0.2)
                result.events_without_reply += len(acked - replied())
                refreshes = [c for c in standin.calls_for("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
                result.refresh_calls += len(refreshes)
                result.refresh_calls_failed += sum(1 for c in refreshes if not c.ok)
                result.ideal_refresh_calls += workspaces
            result.seconds = round(time.time() - started, 2)
            result.dead_refresh_tokens = dead_refresh_tokens(
                app_store(standin, database_url), standin, [ws.team_id for ws in teams]
            )
        finally:
            for process in processes:
                process.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temp folder")
    parser.add_argument("--servers", type=int, default=2, help="separate main.py server processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--events", type=int, default=400, help="events per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32, help="client threads sending events")
    parser.add_argument("--pattern", choices=("spread", "burst"), default="spread",
                        help="spread: workspaces interleaved; burst: each workspace's events back to back")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated Slack latency per call (s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rotation-race-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'race.db'}"
        result = run_rotation_race(
            database_url=url, workdir=Path(tmp), servers=args.servers, workers=args.workers, threads=args.threads,
            workspaces=args.workspaces, events=args.events, rounds=args.rounds, concurrency=args.concurrency,
            pattern=args.pattern, latency=args.latency,
        )
    print(f"database                 {url.split(':')[0]}")
    print(f"processes                {result.servers} servers x {result.workers_per_server} workers x "
          f"{result.threads_per_worker} threads")
    print(f"workspaces / events      {result.workspaces} / {result.events} per round x {result.rounds} rounds "
          f"({result.pattern})")
    print(f"refresh calls            {result.refresh_calls} (ideal {result.ideal_refresh_calls}, "
          f"failed {result.refresh_calls_failed})")
    print(f"failed events            {result.failed_events} (not acked {result.events_not_acked}, "
          f"acked without reply {result.events_without_reply})  statuses {result.statuses}")
    print(f"dead refresh tokens      {result.dead_refresh_tokens}")
    print(f"wall time                {result.seconds} s")
    print("RESULT                   " + ("ideal" if result.ok else "NOT IDEAL"))
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Scale check: authorize and install cost with 10, 10 000 and 100 000 installations (PostgreSQL).

Installations are seeded directly with multi-row INSERTs (seconds, not hours), then the
store-backed authorize (cache off, so every call reads the database) and the installation
store's save are timed on random workspaces, in interleaved rounds (medians reported). The
ratio between sizes is what matters.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid

import sqlalchemy as sa

from bolt_app import database
from slack_standin.harness import scratch_database
from bolt_app.storage import crypto, tables
from bolt_app.storage.tables import to_db_time, utc_now, workspace_key

CLIENT_ID = "7777.8888"
SEED_BATCH = 5000


def _seed(engine: sa.engine.Engine, count: int) -> list[str]:
    teams = [f"T{n:09d}" for n in range(count)]
    now = utc_now()
    expires = to_db_time(time.time() + 40000)
    common = {"client_id": CLIENT_ID, "app_id": "A0SCALE", "enterprise_id": None, "enterprise_name": None,
              "team_name": "Scale", "bot_id": "B1", "bot_user_id": "U1", "bot_scopes": "chat:write",
              "bot_token_expires_at": expires, "is_enterprise_install": False, "installed_at": now,
              "updated_at": now, "status": "ok", "status_reason": None}
    with engine.begin() as conn:
        for start in range(0, count, SEED_BATCH):
            batch = teams[start:start + SEED_BATCH]
            bots = [{**common, "workspace_key": workspace_key(None, t), "team_id": t,
                     "bot_token": f"xoxe.xoxb-1-{t}", "bot_refresh_token": f"xoxe-1-{t}"} for t in batch]
            conn.execute(tables.bots.insert(), bots)
            conn.execute(tables.installations.insert(), [{**b, "user_id": "U0INSTALLER"} for b in bots])
    return teams


def _time_authorize(app, teams: list[str], samples: int) -> float:  # type: ignore[no-untyped-def]
    from slack_bolt import BoltContext

    authorize = app._authorize
    picks = [random.choice(teams) for _ in range(samples)]
    context = BoltContext()
    started = time.perf_counter()
    for team in picks:
        assert authorize(context=context, enterprise_id=None, team_id=team, user_id="U5") is not None
    return (time.perf_counter() - started) / samples


def _time_install(app, samples: int) -> float:  # type: ignore[no-untyped-def]
    from slack_sdk.oauth.installation_store import Installation

    started = time.perf_counter()
    for _ in range(samples):
        team = "TN" + uuid.uuid4().hex[:10].upper()
        app.installation_store.save(Installation(
            app_id="A0SCALE", team_id=team, team_name="New", user_id="U1", bot_token=f"xoxe.xoxb-1-{team}",
            bot_refresh_token=f"xoxe-1-{team}", bot_token_expires_in=43200, bot_id="B1", bot_user_id="U1",
            bot_scopes="chat:write"))
    return (time.perf_counter() - started) / samples


def run_scale(sizes: list[int], samples: int = 2000, rounds: int = 5) -> dict:
    """All sizes are seeded first, then timed in `rounds` interleaved rounds (the order rotating),
    so a slow moment of a shared machine does not land on one size; medians are reported."""
    from contextlib import ExitStack

    from bolt_app.app import create_app
    from bolt_app.settings import load_settings

    results: dict = {}
    with ExitStack() as cleanup:
        apps = {}
        for size in sizes:
            url, drop_database = scratch_database("postgresql", f"bench_scale_{size}")
            cleanup.callback(drop_database)
            engine = database.create_engine(url, pool_size=4)
            cleanup.callback(engine.dispose)
            key = crypto.generate_key()
            crypto.bind(engine, crypto.Keyring([key]))  # seeded tokens are encrypted like real ones
            database.upgrade(engine)
            seeded_at = time.perf_counter()
            teams = _seed(engine, size)
            results[size] = {"seed_seconds": round(time.perf_counter() - seeded_at, 2)}
            # VACUUM too: otherwise autovacuum picks the freshly seeded tables up mid-measurement.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            settings = load_settings({"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": "scale-secret",
                                      "SLACK_SIGNING_SECRET": "scale-signing", "DATABASE_URL": url,
                                      "SLACK_TOKEN_ENCRYPTION_KEYS": key,
                                      "SLACK_API_URL": "http://127.0.0.1:9/api/"})
            app = create_app(settings, engine=engine)
            app.authorize_cache = None
            app._authorize.cache = None  # every call reads the database
            _time_authorize(app, teams, 200)  # warm the pool
            apps[size] = (app, teams)
        timings: dict = {size: {"authorize_us": [], "install_us": []} for size in sizes}
        for n in range(rounds):
            for size in sizes[n % len(sizes):] + sizes[: n % len(sizes)]:
                app, teams = apps[size]
                timings[size]["authorize_us"].append(round(_time_authorize(app, teams, samples) * 1e6, 1))
                timings[size]["install_us"].append(round(_time_install(app, 100) * 1e6, 1))
        for size in sizes:
            for name, values in timings[size].items():
                results[size][name] = round(statistics.median(values), 1)
                results[size][f"{name}_rounds"] = values
            print(f"scale {size}: {results[size]}", flush=True)
    return results


def print_scale(results: dict) -> None:
    sizes = sorted(results, key=int)
    base = results[sizes[0]]
    print("\nscale check (PostgreSQL, authorize with cache off = one indexed read per call)")
    for size in sizes:
        r = results[size]
        print(f"  {int(size):>7} installations: authorize {r['authorize_us']} us ({r['authorize_us'] / base['authorize_us']:.2f}x), "
              f"install {r['install_us']} us ({r['install_us'] / base['install_us']:.2f}x)")

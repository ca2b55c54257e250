"""Command line: serve (default), database and admin commands. `main.py` hands off here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

from bolt_app import database
from bolt_app.logs import configure_logging
from bolt_app.settings import Settings, SettingsError, load_settings
from bolt_app.startup import StartupError, check_port, check_slack
from bolt_app.storage import crypto
from bolt_app.storage.crypto import TokenEncryptionError

EXIT_CONFIG = 2
EXIT_SCHEMA = 3
EXIT_FAILURES = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Multi-workspace Slack app (Bolt for Python).")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve HTTP (default; Socket Mode when SLACK_APP_TOKEN is set)")
    sub.add_parser("worker", help="run the lazy work queued on TASK_QUEUE_URL (replies, votes); as many as you like")

    jobs = sub.add_parser("jobs", help="the task queue's failed jobs").add_subparsers(dest="jobs_command", required=True)
    jobs.add_parser("failed", help="jobs that failed for good: time, function, workspace, error (never their body)")
    retry = jobs.add_parser("retry", help="put failed jobs back on the queue")
    retry.add_argument("ids", nargs="*", metavar="ID", help="a failed job's id (or its first characters)")
    retry.add_argument("--all", action="store_true", help="every failed job")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the schema to the current version (safe to run from many hosts)")
    db.add_parser("current", help="show the schema version")

    inst = sub.add_parser("installations", help="installed workspaces").add_subparsers(dest="inst_command", required=True)
    inst.add_parser("list", help="every installation with token expiry and status (never the tokens)")
    show = inst.add_parser("show", help="one workspace's installation details")
    show.add_argument("team_id", help="workspace (T…) or, for org-wide installs, enterprise (E…) id")

    tokens = sub.add_parser("tokens", help="token rotation").add_subparsers(dest="tokens_command", required=True)
    refresh = tokens.add_parser("refresh", help="rotate every token expiring soon (for cron)")
    refresh.add_argument("--within", type=int, default=None, metavar="MINUTES",
                         help="refresh tokens expiring within this many minutes (default: SLACK_TOKEN_REFRESH_MINUTES)")

    keys = sub.add_parser("keys", help="token encryption keys").add_subparsers(dest="keys_command", required=True)
    keys.add_parser("generate", help="print a new key for SLACK_TOKEN_ENCRYPTION_KEYS")
    keys.add_parser("rotate", help="re-encrypt every stored token with the first key (resumable, safe while serving)")

    manifest = sub.add_parser("manifest", help="print manifest.yml as JSON")
    manifest.add_argument("--socket-mode", action="store_true", help="the local-development variant (Socket Mode)")

    # Listed for --help only: main.py hands `sandbox` to the stand-in package (slack_standin/sandbox.py),
    # which the product never imports.
    sub.add_parser("sandbox", help="try the app offline: a local Slack stand-in, its web console and the app "
                                   "(`python main.py sandbox --help`)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "worker": _worker,
        "jobs": _jobs,
        "db": _db,
        "installations": _installations,
        "tokens": _tokens,
        "manifest": _manifest,
        "keys": _keys,
    }
    try:
        return handlers[command](args)
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG
    except database.SchemaOutOfDate as error:
        print(str(error), file=sys.stderr)
        return EXIT_SCHEMA
    except TokenEncryptionError as error:
        print(f"The app cannot use the stored tokens: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as error:
        # One line naming the setting and the fix; the traceback only for those who asked for it.
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        print(str(error), file=sys.stderr)
        return EXIT_CONFIG


def _settings(purpose: str) -> Settings:
    settings = load_settings(purpose=purpose)  # type: ignore[arg-type]
    for name in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        # Empty means unset (.env.example leaves them empty for one workspace), but Bolt reads these
        # two itself and turns on its own file-based OAuth when they merely exist.
        if name in os.environ and not os.environ[name].strip():
            del os.environ[name]
    configure_logging(settings.log_level, settings.secrets, log_format=settings.log_format)
    return settings


def _serve(args: argparse.Namespace) -> int:
    settings = _settings("serve")
    # Mistakes an operator can fix, found before anything is migrated or forked.
    check_port(settings.host, settings.port)
    check_slack(settings)
    if settings.socket_mode:
        # SLACK_APP_TOKEN: events over Socket Mode; /healthz and the OAuth pages still on PORT.
        from bolt_app.socket_mode import serve_socket_mode

        return serve_socket_mode(settings)
    from bolt_app.server import serve

    serve(settings)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from bolt_app.worker import run

    return run(_settings("worker"))


def _jobs(args: argparse.Namespace) -> int:
    from bolt_app.background import TaskQueue

    settings = _settings("admin")
    if not settings.task_queue_url:
        print("Set TASK_QUEUE_URL to the task queue's Redis URL.", file=sys.stderr)
        return EXIT_CONFIG
    import redis

    try:
        return _jobs_on(TaskQueue(settings.task_queue_url), args)
    except redis.RedisError as error:
        print(f"The task queue cannot be reached ({type(error).__name__}) at {settings.task_queue_url_for_display}.",
              file=sys.stderr)
        return EXIT_FAILURES


def _jobs_on(queue, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    if args.jobs_command == "failed":
        failed = queue.failed_jobs()
        if not failed:
            print("No failed jobs.")
            return 0
        print(f"{'ID':<36}  {'FAILED AT (UTC)':<19}  {'FUNCTION':<20}  {'TEAM':<12}  {'TRIES':>5}  ERROR")
        for job in failed:
            print(f"{job.id:<36}  {job.failed_at:%Y-%m-%d %H:%M:%S}  {job.function:<20}  {job.team:<12}  "
                  f"{job.attempts:>5}  {job.error}")
        return 0
    if bool(args.ids) == args.all:
        print("Name the jobs to retry (their ids from `jobs failed`), or pass --all.", file=sys.stderr)
        return EXIT_CONFIG
    try:
        count = queue.retry_failed(None if args.all else args.ids)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return EXIT_FAILURES
    print(f"Put {count} job(s) back on the queue.")
    return 0


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = database.create_engine(settings.database_url, pool_size=2)
    database.check_connection(engine)
    if settings.token_encryption_keys or settings.is_sqlite:
        # Token columns (and migration 0003) use the keys the app uses.
        crypto.bind(engine, crypto.keyring_from_settings(settings))
    return engine


def _db(args: argparse.Namespace) -> int:
    settings = _settings("admin")
    engine = _engine(settings)
    if args.db_command == "upgrade":
        before, after = database.upgrade(engine)
        print(f"Schema at {after} (was {before or 'empty'}).")
    else:
        current = database.current_revision(engine)
        head = database.head_revision()
        print(f"Schema at {current or 'nothing'}; this version of the app needs {head}.")
    return 0


def _admin_engine(settings: Settings):  # type: ignore[no-untyped-def]
    engine = _engine(settings)
    database.ensure_schema(engine, auto_migrate=settings.is_sqlite and settings.auto_migrate is not False)
    return engine


def _installations(args: argparse.Namespace) -> int:
    from bolt_app import admin

    settings = _settings("admin")
    engine = _admin_engine(settings)
    if args.inst_command == "list":
        print(admin.format_installation_list(admin.list_installations(engine)))
        return 0
    details = admin.show_installation(engine, args.team_id)
    if details is None:
        print(f"No installation for {args.team_id}.", file=sys.stderr)
        return EXIT_FAILURES
    print(details)
    return 0


def _tokens(args: argparse.Namespace) -> int:
    from bolt_app.app import create_app

    settings = _settings("admin")
    if not settings.multi_workspace:
        print("Token rotation needs SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.", file=sys.stderr)
        return EXIT_CONFIG
    engine = _admin_engine(settings)
    app = create_app(settings, engine=engine)
    assert app.tokens is not None
    within = (args.within if args.within is not None else settings.token_refresh_minutes) * 60

    def progress(label: str, outcome: str) -> None:
        print(f"  {label}: {outcome}", flush=True)

    print(f"Refreshing tokens that expire within {within // 60} minutes…", flush=True)
    summary = app.tokens.refresh_expiring(within, progress)
    print(
        f"Done: {summary.refreshed} refreshed, {summary.needs_reinstall} need reinstall, {summary.failed} failed."
    )
    return EXIT_FAILURES if summary.failed or summary.needs_reinstall else 0


def _keys(args: argparse.Namespace) -> int:
    from bolt_app import keys

    if args.keys_command == "generate":
        # Needs no settings: prints a key to put in SLACK_TOKEN_ENCRYPTION_KEYS.
        print(keys.generate())
        return 0
    settings = _settings("admin")
    keyring = crypto.keyring_from_settings(settings)
    engine = _admin_engine(settings)
    print(f"Re-encrypting stored tokens with the first of {len(keyring.fingerprints)} key(s) "
          f"(fingerprint {keyring.fingerprints[0]})…", flush=True)
    summary = keys.rotate(engine, keyring, lambda line: print(f"  {line}", flush=True))
    for failure in summary.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    print(f"Done: {summary.reencrypted} row(s) re-encrypted, {summary.already_current} already under the first key, "
          f"{summary.failed} failed.")
    return EXIT_FAILURES if summary.failed else 0


def _manifest(args: argparse.Namespace) -> int:
    from bolt_app.manifest import manifest_json

    print(manifest_json(socket_mode=True if args.socket_mode else None))
    return 0


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    sys.exit(main())

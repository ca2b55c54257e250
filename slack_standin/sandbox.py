"""`python main.py sandbox`: the whole Slack loop offline, on one machine, in one command.

It starts, on 127.0.0.1:

- the Slack stand-in (``slack_standin``, the same code the tests use) with its web console
  on ``--port`` (default 3100): install, talk to the app, click its buttons, fill its modals,
  open its Home tab, fast-forward token expiry, uninstall, and watch every Web API call;
- the app itself, as users run it (``python main.py``: gunicorn, one worker) on ``--app-port``
  (default 3000), wired to the stand-in.

Everything lives in ``./sandbox/`` (gitignored): generated client id / client secret / signing
secret (``credentials.json``), the app's SQLite database and its token key file, the stand-in's
workspaces and tokens (``slack-standin.json``) and the app's log. A restart keeps installations;
deleting the folder starts over. Secrets and tokens are never printed.

Why the app runs as a separate server process (the harness's ``AppProcess``) rather than in
this process: that is exactly what production runs (gunicorn, the WSGI layer, migrations at
start-up, a worker process), so what a newcomer sees in the sandbox is what the app does.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from bolt_app.manifest import load_manifest
from slack_standin import SlackStandIn, console_store
from slack_standin.console import Console
from slack_standin.harness import AppProcess

try:
    import fcntl
except ImportError:  # Windows: msvcrt locks a byte of the file instead
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

SANDBOX_DIR = "sandbox"
DEFAULT_CONSOLE_PORT = 3100
DEFAULT_APP_PORT = 3000
HOST = "127.0.0.1"
SAVE_INTERVAL_SECONDS = 1.0
EXIT_PORT_TAKEN = 2
EXIT_FAILED = 1

# Settings the app would otherwise pick up from a developer's `.env` (main.py loads it, and an empty
# value set here wins over it): the sandbox must never talk to real Slack or a real database.
_NEUTRALISED = (
    "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SCOPES", "SLACK_USER_SCOPES", "SLACK_TOKEN_ENCRYPTION_KEYS",
    "PUBLIC_URL", "QUERY_STATS_DIR", "SLACK_TOKEN_REFRESH_INTERVAL_MINUTES", "SLACK_TOKEN_REFRESH_MINUTES",
    "SLACK_STATE_EXPIRATION_SECONDS", "SLACK_INSTALL_PAGE",
)


class SandboxError(Exception):
    """The sandbox cannot start; the message says why and what to do."""


class PortTaken(SandboxError):
    pass


@dataclass(frozen=True)
class Credentials:
    """The sandbox app's identity at the stand-in (generated once, kept in the sandbox folder)."""

    client_id: str
    client_secret: str
    signing_secret: str
    app_id: str

    @classmethod
    def generate(cls) -> "Credentials":
        return cls(
            client_id=f"{secrets.randbelow(10**12):012d}.{secrets.randbelow(10**13):013d}",
            client_secret=secrets.token_hex(16),
            signing_secret=secrets.token_hex(16),
            app_id="A" + secrets.token_hex(5).upper(),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> "Credentials":
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            pass
        except (ValueError, TypeError) as error:
            raise SandboxError(f"{path} is not a sandbox credentials file ({error}); delete the sandbox folder to start over.")
        created = cls.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(created), handle, indent=2)
        return created


def _try_lock(handle: IO[str]) -> bool:
    """Lock the open file for this process without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on the port now (connections lingering in TIME_WAIT after a
    restart do not count: the servers here set SO_REUSEADDR, like the probe)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(requested: int | None, default: int, flag: str, what: str) -> tuple[int, str | None]:
    """The port to use and a note when it is not the default. An explicitly requested port that is
    taken is an error (the user asked for it); a taken default falls back to a free port."""
    if requested == 0:
        return 0, None
    if requested is not None:
        if not port_is_free(requested):
            raise PortTaken(f"Port {requested} is already in use. Stop whatever uses it or pick another with {flag} "
                            f"({flag} 0 picks a free one).")
        return requested, None
    if port_is_free(default):
        return default, None
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    return port, f"port {default} is in use, so {what} uses port {port} (choose one with {flag})"


def _manifest_features() -> dict[str, Any]:
    manifest = load_manifest()
    features = manifest.get("features") or {}
    bot = features.get("bot_user") or {}
    return {
        "bot_name": str(bot.get("display_name") or (manifest.get("display_information") or {}).get("name") or "the app"),
        "commands": list(features.get("slash_commands") or []),
        "shortcuts": list(features.get("shortcuts") or []),
    }


class Sandbox:
    """The stand-in (with its console) and the app process, sharing one sandbox folder."""

    def __init__(self, directory: Path, *, port: int = 0, app_port: int = 0, workers: int = 1):
        self.directory = Path(directory).resolve()
        self.port = port
        self.app_port = app_port
        self.workers = workers
        self.standin: SlackStandIn | None = None
        self.app: AppProcess | None = None
        self.console: Console | None = None
        self._lock_file: IO[str] | None = None
        self._saver: threading.Thread | None = None
        self._stop_saving = threading.Event()
        self._saved_text: str | None = None

    @property
    def state_path(self) -> Path:
        return self.directory / "slack-standin.json"

    @property
    def database_path(self) -> Path:
        return self.directory / "app.db"

    @property
    def console_url(self) -> str:
        assert self.standin is not None
        return self.standin.url + "/"

    @property
    def install_url(self) -> str:
        assert self.app is not None
        return self.app.url + "/slack/install"

    def start(self) -> "Sandbox":
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._take_folder_lock()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _take_folder_lock(self) -> None:
        handle = open(self.directory / ".lock", "w")
        if not _try_lock(handle):
            handle.close()
            raise SandboxError(f"Another sandbox is already running from {self.directory}. Stop it first.")
        self._lock_file = handle

    def _start(self) -> None:
        credentials = Credentials.load_or_create(self.directory / "credentials.json")
        standin = SlackStandIn(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            signing_secret=credentials.signing_secret,
            app_id=credentials.app_id,
        )
        try:
            console_store.load(standin, self.state_path)
        except (ValueError, TypeError, KeyError) as error:
            raise SandboxError(f"{self.state_path} cannot be read ({type(error).__name__}: {error}); "
                               "delete the sandbox folder to start over.") from None
        try:
            standin.start(HOST, self.port)
        except OSError as error:
            raise PortTaken(f"The console cannot listen on {HOST}:{self.port}: {error.strerror}.") from None
        self.standin = standin
        app = AppProcess(
            env={
                **{name: "" for name in _NEUTRALISED},
                "SLACK_CLIENT_ID": credentials.client_id,
                "SLACK_CLIENT_SECRET": credentials.client_secret,
                "SLACK_SIGNING_SECRET": credentials.signing_secret,
                "SLACK_API_URL": standin.api_url,
                "SLACK_AUTHORIZE_URL": standin.authorize_url,
                # Tokens are encrypted with the key file created next to this database (app.db.key).
                "DATABASE_URL": f"sqlite:///{self.database_path}",
                "DATABASE_AUTO_MIGRATE": "true",
                "WEB_CONCURRENCY": str(self.workers),
                "WEB_THREADS": "8",
                "LOG_LEVEL": "INFO",
            },
            workdir=self.directory,
            port=self.app_port or None,
        )
        app.log_path = self.directory / "app.log"
        standin.redirect_uri = f"{app.url}/slack/oauth_redirect"
        standin.request_url = app.events_url
        features = _manifest_features()
        self.console = Console(standin, app_url=app.url, **features)
        standin.console = self.console
        self.app = app
        try:
            app.start(timeout=60)
        except RuntimeError as error:
            raise SandboxError(f"The app did not start (its log: {app.log_path}).\n{_tail(str(error))}") from None
        self._saver = threading.Thread(target=self._save_loop, name="sandbox-saver", daemon=True)
        self._saver.start()

    def _save_loop(self) -> None:
        while not self._stop_saving.wait(SAVE_INTERVAL_SECONDS):
            try:
                self.save()
            except OSError:
                logger.exception("Could not save the stand-in's state to %s", self.state_path)

    def save(self) -> None:
        """Write the stand-in's workspaces and tokens to the sandbox folder (when they changed)."""
        if self.standin is not None:
            self._saved_text = console_store.save(self.standin, self.state_path, previous=self._saved_text)

    def app_exited(self) -> int | None:
        """The app process's exit code once it has exited by itself, else None."""
        if self.app is None or self.app.process is None:
            return None
        return self.app.process.poll()

    def stop(self) -> None:
        """Stop the app, save and stop the stand-in, release the ports and the folder (idempotent)."""
        self._stop_saving.set()
        if self._saver is not None:
            self._saver.join(timeout=5)
            self._saver = None
        if self.app is not None and self.app.process is not None:
            self.app.stop()
        self.app = None
        if self.standin is not None:
            try:
                self.save()
            finally:
                self.standin.stop()
                self.standin = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run(port: int | None = None, app_port: int | None = None, directory: Path | None = None,
        out: IO[str] | None = None) -> int:
    """The `sandbox` command: start everything, print the URLs, wait for Ctrl-C / SIGTERM, stop cleanly."""
    out = out or sys.stdout
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    directory = directory or Path.cwd() / SANDBOX_DIR
    try:
        console_port, console_note = choose_port(port, DEFAULT_CONSOLE_PORT, "--port", "the console")
        app_port_, app_note = choose_port(app_port, DEFAULT_APP_PORT, "--app-port", "the app")
    except PortTaken as error:
        print(error, file=sys.stderr)
        return EXIT_PORT_TAKEN
    if console_port and console_port == app_port_:
        print("--port and --app-port must differ.", file=sys.stderr)
        return EXIT_PORT_TAKEN

    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(directory, port=console_port, app_port=app_port_)
    try:
        first_run = not (directory / "credentials.json").exists()
        print(f"Starting the sandbox in {_relative(directory)}/ …", file=out, flush=True)
        try:
            sandbox.start()
        except PortTaken as error:
            print(error, file=sys.stderr)
            return EXIT_PORT_TAKEN
        except SandboxError as error:
            print(error, file=sys.stderr)
            return EXIT_FAILED
        for note in (console_note, app_note):
            if note:
                print(f"Note: {note}.", file=out)
        assert sandbox.app is not None
        print(
            "\nSlack sandbox: a local Slack stand-in and the app, offline on this machine.\n"
            f"  Console:           {sandbox.console_url}\n"
            f"  App install page:  {sandbox.install_url}\n"
            f"  App log:           {_relative(sandbox.app.log_path)}\n"
            f"  Data:              {_relative(directory)}/ ({'new' if first_run else 'kept from the last run'}; "
            "delete it to start over)\n"
            "Open the console in a browser and choose \"Install into a new workspace\". Ctrl-C stops.",
            file=out,
            flush=True,
        )
        while not stop.wait(0.5):
            code = sandbox.app_exited()
            if code is not None and not stop.wait(0.5):
                print(f"The app exited by itself (code {code}); see {_relative(sandbox.app.log_path)}.", file=sys.stderr)
                return EXIT_FAILED
        print("\nStopping…", file=out, flush=True)
        return 0
    finally:
        sandbox.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if stop.is_set():
            print("Sandbox stopped.", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python main.py sandbox [--port N] [--app-port N]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="main.py sandbox",
                                     description="Try the app offline: a local Slack stand-in, its web console and the app.")
    parser.add_argument("--port", type=int, default=None, metavar="PORT",
                        help="console (and stand-in) port on 127.0.0.1 (default 3100; 0 picks a free one)")
    parser.add_argument("--app-port", type=int, default=None, metavar="PORT",
                        help="the app's port on 127.0.0.1 (default 3000; 0 picks a free one)")
    args = parser.parse_args(argv)
    return run(port=args.port, app_port=args.app_port)

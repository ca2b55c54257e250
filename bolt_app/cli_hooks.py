"""Slack CLI hooks, wired up in `.slack/hooks.json`: `slack run` starts this app over Socket Mode.

The CLI runs each hook as a subprocess in the project directory and takes its stdout as the
answer (the CLI's default hook protocol: nothing but the answer may be printed on stdout).

* `get-manifest` (slack run, slack manifest info): manifest.yml, the one manifest, printed as
  JSON in its Socket Mode variant (socket_mode_enabled on, no request URLs) — `slack run`
  connects over Socket Mode and Slack refuses request URLs on a Socket Mode app.
* `start` (slack run; `sdk-managed-connection-enabled`, so the app holds the socket): the CLI
  hands over its development app's tokens as SLACK_CLI_XAPP / SLACK_CLI_XOXB. They become
  SLACK_APP_TOKEN and, in single-workspace mode, SLACK_BOT_TOKEN; with SLACK_CLIENT_ID set
  (multi-workspace, in the environment or .env) the bot token is left out — workspaces install
  through /slack/install and their tokens come from the installation store. Then this process
  becomes `python main.py`, so Ctrl-C and SIGTERM reach the app's graceful shutdown directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from bolt_app.manifest import PROJECT_ROOT, manifest_json

MAIN = PROJECT_ROOT / "main.py"


def get_manifest() -> int:
    print(manifest_json(socket_mode=True))
    return 0


def start_env(environ: Mapping[str, str], dotenv: Mapping[str, str | None]) -> dict[str, str]:
    """The app's environment for `slack run`; raises ValueError when the CLI gave no app token."""
    env = dict(environ)
    app_token = env.get("SLACK_CLI_XAPP") or env.get("SLACK_APP_TOKEN")
    if not app_token:
        raise ValueError("SLACK_CLI_XAPP is not set: run this hook through `slack run`, or set SLACK_APP_TOKEN.")
    # The CLI's tokens belong to the app it is running; they win over any in .env.
    env["SLACK_APP_TOKEN"] = app_token
    multi_workspace = bool((env.get("SLACK_CLIENT_ID") or dotenv.get("SLACK_CLIENT_ID") or "").strip())
    if multi_workspace:
        if env.get("SLACK_BOT_TOKEN") == env.get("SLACK_CLI_XOXB"):
            env.pop("SLACK_BOT_TOKEN", None)  # the CLI's token: installations provide tokens instead
    elif env.get("SLACK_CLI_XOXB"):
        env["SLACK_BOT_TOKEN"] = env["SLACK_CLI_XOXB"]
    return env


def start() -> int:
    from dotenv import dotenv_values

    try:
        env = start_env(os.environ, dotenv_values(PROJECT_ROOT / ".env"))
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 1
    if "SLACK_BOT_TOKEN" not in env and "SLACK_CLI_XOXB" in env:
        print("Multi-workspace mode: install into workspaces at http://localhost:"
              f"{env.get('PORT', '3000')}/slack/install", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, str(MAIN)], env)
    return 1  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bolt_app.cli_hooks", description="Slack CLI hooks")
    parser.add_argument("hook", choices=("get-manifest", "start"))
    # The CLI may append --key=value flags (e.g. protocol negotiation); they change nothing here.
    args, _unknown = parser.parse_known_args(argv)
    return get_manifest() if args.hook == "get-manifest" else start()


if __name__ == "__main__":
    sys.exit(main())

"""Our two Slack CLI hooks, next to the official ones: `slack run` starts this app over Socket Mode.

`.slack/hooks.json` names `get-hooks` from `slack-cli-hooks` (Slack's implementation of the CLI
contract for Bolt for Python): it tells the CLI every hook, the protocol and the defaults, and
provides `doctor` and `check-update`. The project file overrides two hooks, because this app
differs from a stock Bolt app in exactly these places, and the watch settings:

* `get-manifest` (slack run, slack manifest info): manifest.yml, the one manifest, printed as
  JSON in its Socket Mode variant (socket_mode_enabled on, no request URLs) — `slack run`
  connects over Socket Mode and Slack refuses request URLs on a Socket Mode app. The stock hook
  reads only a manifest.json. The answer goes out through slack-cli-hooks' protocol, so the
  message-boundaries protocol the CLI negotiates works as it does for the stock hooks.
* `start` (slack run; `sdk-managed-connection-enabled`, so the app holds the socket): the CLI
  hands over its development app's tokens as SLACK_CLI_XAPP / SLACK_CLI_XOXB. They become
  SLACK_APP_TOKEN and, in single-workspace mode, SLACK_BOT_TOKEN; with SLACK_CLIENT_ID set
  (multi-workspace, in the environment or .env) the bot token is left out — workspaces install
  through /slack/install and their tokens come from the installation store. Then this process
  becomes `python main.py`, so Ctrl-C and SIGTERM reach the app's graceful shutdown directly.
  The stock hook runs app.py inside the hook process and always uses the CLI's bot token.
* watch: the CLI restarts the app when a `.py` file of the app changes and reinstalls the
  development app when manifest.yml changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping, Sequence

from bolt_app.manifest import PROJECT_ROOT, manifest_json

MAIN = PROJECT_ROOT / "main.py"


def get_manifest(argv: Sequence[str]) -> int:
    from slack_cli_hooks.protocol import build_protocol

    # The CLI adds --protocol/--boundary when it negotiated message boundaries; without them the
    # answer is printed as it is (the default protocol).
    build_protocol(argv=["get-manifest", *argv]).respond(manifest_json(socket_mode=True))
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
    # The CLI appends flags (--protocol, --boundary, …); get-manifest hands them to the protocol.
    args, rest = parser.parse_known_args(argv)
    return get_manifest(rest) if args.hook == "get-manifest" else start()


if __name__ == "__main__":
    sys.exit(main())

"""Run the stand-in by hand: ``python -m slack_standin --port 3001``.

Why: the offline sandbox needs a long-running Slack to install into from a browser.
"""

from __future__ import annotations

import argparse
import logging
import threading

from .server import SlackStandIn


def main(argv: list[str] | None = None) -> None:
    """Start a stand-in with a couple of workspaces and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m slack_standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--client-id", default="111.222")
    parser.add_argument("--client-secret", default="standin-client-secret")
    parser.add_argument("--signing-secret", default="standin-signing-secret")
    parser.add_argument("--app-id", default="A0APP")
    parser.add_argument("--redirect-uri", default=None, help="the app's OAuth redirect URL")
    parser.add_argument("--request-url", default=None, help="where the app receives events")
    parser.add_argument("--workspaces", type=int, default=2, help="workspaces to create up front")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    standin = SlackStandIn(
        client_id=args.client_id,
        client_secret=args.client_secret,
        signing_secret=args.signing_secret,
        app_id=args.app_id,
    )
    standin.redirect_uri = args.redirect_uri
    standin.request_url = args.request_url
    for i in range(args.workspaces):
        standin.create_workspace(name=f"Sandbox {i + 1}")
    standin.start(args.host, args.port)
    print(f"Slack stand-in at {standin.url}  (Web API base_url {standin.api_url}, authorize {standin.authorize_url})")
    print(f"Socket Mode: SLACK_APP_TOKEN={standin.app_token}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()

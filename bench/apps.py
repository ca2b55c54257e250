"""The two comparison apps of the benchmark, served by gunicorn exactly like the app itself.

- `stock_wsgi`: Bolt as its SQLAlchemy OAuth example configures it (slack_sdk's SQLAlchemy
  installation and state stores, tables created at start, Bolt's default authorize, Bolt's WSGI
  adapter), pointed at the stand-in, with the same `app_mention` reply.
- `floor_wsgi`: a bare WSGI app that verifies the Slack signature and answers 200.

Both read the same environment variables as the app (SLACK_*, DATABASE_URL, QUERY_STATS_DIR).
Run with e.g. `gunicorn -k gthread -w 4 --threads 8 bench.apps:stock_wsgi`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time


def _stock_app():  # type: ignore[no-untyped-def]
    import sqlalchemy
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_bolt.oauth.oauth_settings import OAuthSettings
    from slack_sdk import WebClient
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    from bolt_app.database import normalize_database_url

    url = normalize_database_url(os.environ["DATABASE_URL"])
    engine = sqlalchemy.create_engine(url, pool_size=int(os.environ.get("WEB_THREADS", "8")) + 2)
    if os.environ.get("QUERY_STATS_DIR"):
        from bolt_app.diagnostics import count_queries

        count_queries(engine, os.environ["QUERY_STATS_DIR"])
    client_id = os.environ["SLACK_CLIENT_ID"]
    installation_store = SQLAlchemyInstallationStore(client_id=client_id, engine=engine)
    state_store = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine)
    # The example creates its tables at start-up; the benchmark creates them once beforehand
    # (see run.py), because concurrent CREATE TABLE from several workers makes them fail to boot.
    client = WebClient(base_url=os.environ["SLACK_API_URL"])
    app = App(
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        client=client,
        installation_store=installation_store,
        oauth_settings=OAuthSettings(
            client_id=client_id,
            client_secret=os.environ["SLACK_CLIENT_SECRET"],
            scopes=["app_mentions:read", "chat:write"],
            installation_store=installation_store,
            state_store=state_store,
            authorization_url=os.environ["SLACK_AUTHORIZE_URL"],
            redirect_uri=os.environ.get("SLACK_REDIRECT_URI"),
        ),
    )

    @app.event("app_mention")
    def reply(event, client):  # type: ignore[no-untyped-def]
        client.chat_postMessage(channel=event["channel"], thread_ts=event.get("ts"), text="Hi!")

    handler = SlackRequestHandler(app)
    return handler


def create_stock_tables(database_url: str) -> None:
    import sqlalchemy
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    from bolt_app.database import normalize_database_url

    engine = sqlalchemy.create_engine(normalize_database_url(database_url))
    SQLAlchemyInstallationStore(client_id="x", engine=engine).create_tables()
    SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine).create_tables()
    engine.dispose()


_stock = None
_stock_lock = threading.Lock()


def stock_wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    global _stock
    if _stock is None:
        # Built once per worker: the first requests arrive on several threads at once.
        with _stock_lock:
            if _stock is None:
                _stock = _stock_app()
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    return _stock(environ, start_response)


_SECRET = None


def floor_wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    """Verify the signature over the raw body and answer 200: the least any Slack app must do."""
    global _SECRET
    if _SECRET is None:
        _SECRET = os.environ["SLACK_SIGNING_SECRET"].encode()
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
    ok = False
    if timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300:
        expected = "v0=" + hmac.new(_SECRET, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, signature)
    start_response("200 OK" if ok else "401 Unauthorized", [("Content-Length", "0")])
    return [b""]

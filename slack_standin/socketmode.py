"""Socket Mode: app-level tokens, ``apps.connections.open`` and a websocket server speaking Slack's envelopes.

Slack's side of the wire format that slack_sdk's Socket Mode clients expect:

* ``apps.connections.open`` (app-level ``xapp-`` token in the Authorization header) answers
  ``{"ok": true, "url": "ws://127.0.0.1:PORT/link/?ticket=...&app_id=..."}``; a ticket opens one
  connection, once, within ``socket_ticket_lifetime_seconds``.
* On connect the server sends ``{"type": "hello", "num_connections": N, "debug_info": {...},
  "connection_info": {"app_id": ...}}``; protocol-level ping frames are answered with pongs.
* Envelopes are ``{"envelope_id", "type", "payload", "accepts_response_payload"}`` with ``type``
  ``events_api`` (plus ``retry_attempt`` / ``retry_reason``), ``slash_commands`` or ``interactive``.
  The app acks with ``{"envelope_id": ..., "payload": {...}?}``; acks are recorded with timestamps.
* ``{"type": "disconnect", "reason": ...}`` asks the client to open a new connection (Slack sends it
  before refreshing a connection); a close frame or a bare TCP drop models the other ways a
  connection ends.

The websocket server (``websockets``' threaded server) starts with the first ``apps.connections.open``
and stops with the stand-in.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from .core import _ApiError, _Core
from .models import _Token, redact

logger = logging.getLogger("slack_standin")

APP_TOKEN_PREFIX = "xapp-1-"
#: Envelope types Slack delivers over Socket Mode (the ``type`` of an envelope).
ENVELOPE_TYPES = ("events_api", "slash_commands", "interactive")
#: Interactions whose ack may carry a response (``response_action``, options); Slack sets
#: ``accepts_response_payload`` for these and for slash commands.
_RESPONDING_INTERACTIONS = ("view_submission", "block_suggestion")

DropMode = Literal["abort", "close", "disconnect"]


@dataclass
class _SocketConnection:
    id: str
    ws: ServerConnection
    app_token: str
    opened_at: float
    closed_at: float | None = None
    close_code: int | None = None
    ready: bool = False  # hello sent

    @property
    def usable(self) -> bool:
        return self.ready and self.closed_at is None

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "open": self.closed_at is None,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "close_code": self.close_code,
            "app_token": redact(self.app_token),
        }


@dataclass
class SocketDelivery:
    """One envelope sent over Socket Mode and, once it comes, the app's ack.

    Mirrors ``AppResponse`` so helpers written for HTTP deliveries keep working: unpacks as
    ``(status, headers, body)`` where ``status`` is 200 once acked (0 while not), ``body`` is the
    ack's ``payload`` as JSON (what an HTTP response body would carry), ``.json()`` decodes it and
    ``.payload`` is what was sent (the envelope's ``payload``). Also: ``.envelope``, ``.ack``
    (the app's ack message), ``.ack_seconds`` and ``wait(timeout)``.
    """

    envelope: dict[str, Any]
    connection_id: str
    sent_at: float
    ack: dict[str, Any] | None = None
    acked_at: float | None = None
    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def envelope_id(self) -> str:
        return self.envelope["envelope_id"]

    @property
    def payload(self) -> Any:
        return self.envelope["payload"]

    @property
    def acked(self) -> bool:
        return self._event.is_set()

    @property
    def ack_seconds(self) -> float | None:
        return None if self.acked_at is None else self.acked_at - self.sent_at

    @property
    def ack_payload(self) -> Any:
        return (self.ack or {}).get("payload")

    @property
    def status(self) -> int:
        return 200 if self.acked else 0

    @property
    def headers(self) -> dict[str, str]:
        return {}

    @property
    def body(self) -> bytes:
        payload = self.ack_payload
        return b"" if payload is None else json.dumps(payload).encode("utf-8")

    def json(self) -> Any:
        return self.ack_payload

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the app acks (True) or ``timeout`` passes (False)."""
        return self._event.wait(timeout)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter((self.status, self.headers, self.body))


class _SocketModeMixin(_Core):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: A websocket URL from ``apps.connections.open`` must be used within this many seconds.
        self.socket_ticket_lifetime_seconds = 30.0
        #: How long ``send_*(..., via="socket")`` waits for the app's ack before returning unacked.
        self.socket_ack_timeout_seconds = 10.0
        #: How long a delivery waits for an open connection (e.g. while the app reconnects).
        self.socket_connect_wait_seconds = 10.0
        self._app_token: str | None = None
        self._socket_tickets: dict[str, tuple[str, float]] = {}
        self._socket_connections: list[_SocketConnection] = []
        self._socket_deliveries: dict[str, SocketDelivery] = {}
        self._socket_acks: list[dict[str, Any]] = []
        self._socket_changed = threading.Condition(self._lock)
        self._ws_server: Server | None = None
        self._ws_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ app-level tokens

    @property
    def app_token(self) -> str:
        """The app's app-level token (``xapp-...``, scope ``connections:write``), created on first use."""
        with self._lock:
            if self._app_token is None:
                self._app_token = self.create_app_token()
            return self._app_token

    def create_app_token(self) -> str:
        """Mint another app-level token for this app (Slack allows several)."""
        with self._lock:
            n = self._counters.get("xapp", 0) + 1
            self._counters["xapp"] = n
            value = f"{APP_TOKEN_PREFIX}{self.app_id}-{int(time.time())}{n:03d}-{secrets.token_hex(32)}"
            self._tokens[value] = _Token(
                value=value,
                kind="app",
                install_key=(None, None),
                team_id=None,
                enterprise_id=None,
                user_id="",
                scope="connections:write",
                expires_at=None,
            )
            return value

    def revoke_app_token(self, token: str) -> None:
        """Revoke an app-level token: ``apps.connections.open`` answers ``token_revoked`` from now on."""
        with self._lock:
            rec = self._tokens.get(token)
            if rec is None or rec.kind != "app":
                raise ValueError("not an app-level token of this stand-in")
            rec.alive = False
            rec.dead_error = "token_revoked"

    def _api_apps_connections_open(self, ctx: Any) -> dict[str, Any]:
        if not ctx.token:
            raise _ApiError("not_authed")
        rec = ctx.record
        if rec is None or rec.kind == "refresh":
            raise _ApiError("invalid_auth")
        if rec.kind != "app":
            raise _ApiError("not_allowed_token_type")
        if not rec.alive:
            raise _ApiError(rec.dead_error)
        host, port = self._ensure_ws_server()
        ticket = str(uuid.uuid4())
        self._socket_tickets[ticket] = (rec.value, ctx.now)
        return {"url": f"ws://{host}:{port}/link/?ticket={ticket}&app_id={self.app_id}"}

    # ------------------------------------------------------------------ websocket server

    def _ensure_ws_server(self) -> tuple[str, int]:
        """(host, port) of the websocket server, started on the stand-in's host on first use."""
        with self._lock:
            if self._ws_server is None:
                self._ws_server = serve(
                    self._ws_handler,
                    urlsplit(self._base_url()).hostname,  # type: ignore[attr-defined]
                    0,
                    process_request=self._ws_process_request,
                    compression=None,
                    close_timeout=2,
                    server_header="SlackStandIn/1.0",
                    logger=logging.getLogger("slack_standin.socketmode"),
                )
                self._ws_thread = threading.Thread(
                    target=self._ws_server.serve_forever, name="slack-standin-socket-mode", daemon=True
                )
                self._ws_thread.start()
            host, port = self._ws_server.socket.getsockname()[:2]
            return host, port

    def _stop_socket_mode(self) -> None:
        """Close every connection and the websocket server (called by ``stop()``)."""
        with self._lock:
            server, thread = self._ws_server, self._ws_thread
            self._ws_server, self._ws_thread = None, None
        if server is not None:
            server.shutdown()
        if thread is not None:
            thread.join(timeout=5)

    def _ws_process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Check the ticket before the upgrade: a used, expired or unknown one gets an HTTP error."""
        parts = urlsplit(request.path)
        ticket = (parse_qs(parts.query).get("ticket") or [""])[0]
        with self._lock:
            issued = self._socket_tickets.pop(ticket, None)
        if parts.path != "/link/" or issued is None:
            return _http_error(404, "unknown or already used ticket")
        token, issued_at = issued
        if time.time() - issued_at > self.socket_ticket_lifetime_seconds:
            return _http_error(410, "expired ticket")
        connection.standin_app_token = token  # type: ignore[attr-defined]
        return None

    def _ws_handler(self, ws: ServerConnection) -> None:
        with self._lock:
            conn = _SocketConnection(
                id=self._new_id("WS", (), width=4),
                ws=ws,
                app_token=getattr(ws, "standin_app_token", ""),
                opened_at=time.time(),
            )
            self._socket_connections.append(conn)
            hello = {
                "type": "hello",
                "num_connections": sum(1 for c in self._socket_connections if c.closed_at is None),
                "debug_info": {"host": "standin-applink-1", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        logger.debug("socket connection %s opened", conn.id)
        try:
            ws.send(json.dumps(hello))
            with self._lock:
                conn.ready = True  # hello went first; deliveries may use this connection now
                self._socket_changed.notify_all()
            for message in ws:
                self._record_ack(conn, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                conn.closed_at = time.time()
                conn.close_code = ws.close_code
                self._socket_changed.notify_all()
            logger.debug("socket connection %s closed (%s)", conn.id, ws.close_code)

    def _record_ack(self, conn: _SocketConnection, message: str | bytes) -> None:
        now = time.time()
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            data = None
        with self._lock:
            if not isinstance(data, dict) or "envelope_id" not in data:
                self._socket_acks.append({"envelope_id": None, "payload": None, "at": now, "connection": conn.id,
                                          "invalid": True, "raw": message})
                return
            envelope_id = str(data["envelope_id"])
            delivery = self._socket_deliveries.get(envelope_id)
            self._socket_acks.append({
                "envelope_id": envelope_id,
                "payload": data.get("payload"),
                "at": now,
                "connection": conn.id,
                "known": delivery is not None,
            })
            if delivery is not None and delivery.ack is None:
                delivery.ack, delivery.acked_at = data, now
                delivery._event.set()

    # ------------------------------------------------------------------ delivering envelopes

    def _open_connection(self, timeout: float) -> _SocketConnection | None:
        """The newest open connection, waiting up to ``timeout`` for one (e.g. during a reconnect)."""
        deadline = time.time() + timeout
        with self._lock:
            while True:
                live = [c for c in self._socket_connections if c.usable]
                if live:
                    return live[-1]
                remaining = deadline - time.time()
                if remaining <= 0:
                    return None
                self._socket_changed.wait(remaining)

    def socket_send(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "timeout",
        accepts_response_payload: bool | None = None,
        wait: bool = True,
    ) -> SocketDelivery:
        """Send one envelope over the newest open connection; by default wait for the ack.

        ``envelope_type`` is ``events_api``, ``slash_commands`` or ``interactive``. Waits up to
        ``socket_connect_wait_seconds`` for a connection (RuntimeError if none) and, with
        ``wait``, up to ``socket_ack_timeout_seconds`` for the ack (the result says whether it came).
        """
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"envelope type must be one of {ENVELOPE_TYPES}")
        if accepts_response_payload is None:
            accepts_response_payload = envelope_type == "slash_commands" or (
                envelope_type == "interactive" and payload.get("type") in _RESPONDING_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_num or 0
            envelope["retry_reason"] = retry_reason if retry_num else ""
        conn = self._open_connection(self.socket_connect_wait_seconds)
        if conn is None:
            raise RuntimeError("no open Socket Mode connection: is the app running with SLACK_APP_TOKEN?")
        with self._lock:
            delivery = SocketDelivery(envelope=envelope, connection_id=conn.id, sent_at=time.time())
            self._socket_deliveries[delivery.envelope_id] = delivery
            self._sent.append({"kind": envelope_type, "payload": payload, "status": None, "at": delivery.sent_at,
                               "via": "socket", "envelope_id": delivery.envelope_id})
        try:
            conn.ws.send(json.dumps(envelope))
        except ConnectionClosed:
            logger.debug("socket connection %s closed while sending %s", conn.id, delivery.envelope_id)
        if wait:
            delivery.wait(self.socket_ack_timeout_seconds)
        return delivery

    # ------------------------------------------------------------------ looking & breaking things

    @property
    def socket_connections(self) -> list[dict[str, Any]]:
        """Every Socket Mode connection so far, oldest first: ``id, open, opened_at, closed_at, close_code``."""
        with self._lock:
            return [c.info() for c in self._socket_connections]

    @property
    def socket_acks(self) -> list[dict[str, Any]]:
        """The app's acks, oldest first: ``envelope_id, payload, at, connection, known``."""
        with self._lock:
            return [dict(a) for a in self._socket_acks]

    @property
    def socket_deliveries(self) -> list[SocketDelivery]:
        """Envelopes sent so far (with their acks), oldest first."""
        with self._lock:
            return list(self._socket_deliveries.values())

    def wait_for_socket_connection(self, timeout: float = 10.0, newer_than: float | None = None) -> bool:
        """Block until a connection is open (opened after ``newer_than``, a ``time.time()``, if given)."""
        deadline = time.time() + timeout
        with self._lock:
            while True:
                if any(c.usable and (newer_than is None or c.opened_at > newer_than)
                       for c in self._socket_connections):
                    return True
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._socket_changed.wait(remaining)

    def drop_socket_connections(self, how: DropMode = "abort", reason: str = "refresh_requested") -> int:
        """End every open connection; returns how many. The app is expected to reconnect.

        ``abort``: the TCP connection is reset with no close frame (a network failure or a crashed
        server). ``close``: a websocket close frame (1001, going away). ``disconnect``: Slack's
        ``{"type": "disconnect", "reason": reason}`` message, then a close frame a second later
        (how Slack refreshes connections; ``reason="link_disabled"`` means do not reconnect).
        """
        with self._lock:
            live = [c for c in self._socket_connections if c.closed_at is None]
        for conn in live:
            try:
                if how == "abort":
                    # SO_LINGER 0: closing sends a RST, as when the network or the far end dies.
                    # Closed before websockets' reader is woken, so it cannot send a FIN first.
                    conn.ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.ws.socket.close()
                    conn.ws.close_socket()
                elif how == "close":
                    threading.Thread(target=conn.ws.close, args=(1001, "going away"), daemon=True).start()
                elif how == "disconnect":
                    message = {"type": "disconnect", "reason": reason,
                               "debug_info": {"host": "standin-applink-1"}}
                    conn.ws.send(json.dumps(message))
                    timer = threading.Timer(1.0, conn.ws.close, args=(1001, reason))
                    timer.daemon = True
                    timer.start()
                else:
                    raise ValueError("how must be 'abort', 'close' or 'disconnect'")
            except (ConnectionClosed, OSError):
                pass
        return len(live)


def _http_error(status: int, text: str) -> Response:
    body = text.encode("utf-8")
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(status, {404: "Not Found", 410: "Gone"}.get(status, "Error"), headers, body)

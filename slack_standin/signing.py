"""Slack request signing (v0 scheme), so the stand-in's requests pass Bolt's verification."""

from __future__ import annotations

import hashlib
import hmac
import time

#: Short names accepted wherever a content type is expected.
CONTENT_TYPES: dict[str, str] = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
}


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(signing_secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return Slack's ``v0=<hex>`` signature of ``body`` sent at ``timestamp``.

    Slack signs ``"v0:{timestamp}:{raw body}"`` with HMAC-SHA256 keyed by the app's
    signing secret; Bolt recomputes it to reject forged or replayed requests.
    """
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + _as_bytes(body)
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def content_type_for(content_type: str) -> str:
    """Expand ``"json"``/``"form"`` to a MIME type; pass anything else through unchanged."""
    return CONTENT_TYPES.get(content_type, content_type)


def signed_headers(
    signing_secret: str,
    body: bytes | str,
    timestamp: int | str | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Build the headers Slack sends with every request to an app (timestamp defaults to now).

    ``content_type`` may be a MIME type or the shorthands ``"json"`` / ``"form"``.
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type_for(content_type),
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sign(signing_secret, ts, body),
    }

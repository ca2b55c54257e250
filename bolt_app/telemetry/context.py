"""What is known about the request or job the current thread is serving, for log lines.

Set around each Slack request by the WSGI layer (bolt_app/web.py) and around each job by the
queue worker; copied onto the thread a `lazy=` function runs on (bolt_app/lazy_work.py). Values
are ids and kinds, never tokens or message text.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterator, Mapping, Optional

_current: ContextVar[Mapping[str, str]] = ContextVar("bolt_app_log_context", default={})


def current() -> Mapping[str, str]:
    return _current.get()


@contextlib.contextmanager
def bound(**fields: Optional[str]) -> Iterator[None]:
    """Add `fields` (None values left out) to the context for the duration of the block."""
    token = _current.set({**_current.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _current.reset(token)


def payload_fields(body: Any) -> dict[str, Optional[str]]:
    """The event id and the workspace and organisation ids of a parsed Slack payload, where it
    names them (events, slash commands and interactive payloads each put them elsewhere)."""
    if not isinstance(body, dict):
        return {}
    team = body.get("team") if isinstance(body.get("team"), dict) else {}
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    enterprise = body.get("enterprise") if isinstance(body.get("enterprise"), dict) else {}
    team_id = body.get("team_id") or team.get("id") or user.get("team_id")
    enterprise_id = body.get("enterprise_id") or enterprise.get("id")
    event_id = body.get("event_id")
    return {
        "team_id": _short(team_id),
        "enterprise_id": _short(enterprise_id),
        "event_id": _short(event_id),
    }


def _short(value: Any) -> Optional[str]:
    # Ids are short strings; anything else in these fields is not worth a log line's room.
    return value[:40] if isinstance(value, str) and value else None

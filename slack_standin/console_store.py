"""Saving and restoring a stand-in's directory to a JSON file, so the sandbox survives a restart.

Why: the sandbox's app keeps its installations in SQLite; without this, a restarted stand-in
would have forgotten the workspaces and would answer ``invalid_auth`` to every token the app
still holds. What is kept: enterprises, workspaces, users, channels, installs, tokens (access,
refresh and app-level), messages, ephemerals, views and response_url replies, and the id
counters. What is not: OAuth codes, trigger ids and response URLs (short-lived on Slack too),
recorded calls and deliveries, fault injection.

The file holds live tokens: it is written with mode 0600, atomically (temp file + rename).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .core import _Core
from .models import Enterprise, Workspace, _Install, _Token, _User

FORMAT_VERSION = 1


def snapshot(standin: _Core) -> dict[str, Any]:
    """The stand-in's persistent state as JSON-ready data (taken under its lock)."""
    with standin._lock:
        return {
            "version": FORMAT_VERSION,
            "counters": dict(standin._counters),
            "last_ts_us": standin._last_ts_us,
            "enterprises": [dataclasses.asdict(e) for e in standin._enterprises.values()],
            "workspaces": [dataclasses.asdict(w) for w in standin._workspaces.values()],
            "users": [dict(dataclasses.asdict(u), teams=sorted(u.teams)) for u in standin._users.values()],
            "channels": copy.deepcopy(list(standin._channels.values())),
            "installs": [dataclasses.asdict(i) for i in standin._installs.values()],
            "bot_ids": sorted(standin._bot_ids),
            "tokens": [dataclasses.asdict(t) for t in standin._tokens.values()],
            "messages": copy.deepcopy(standin._messages),
            "ephemerals": copy.deepcopy(standin._ephemerals),
            "views": copy.deepcopy(standin._views),
            "responses": copy.deepcopy(standin._responses),
        }


def restore(standin: _Core, data: dict[str, Any]) -> None:
    """Load what ``snapshot`` produced into a fresh (empty) stand-in."""
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported stand-in state version {data.get('version')!r}")

    def key(value: Any) -> tuple[str | None, str | None]:
        return (value[0], value[1])

    with standin._lock:
        standin._counters.update(data.get("counters") or {})
        standin._last_ts_us = max(standin._last_ts_us, int(data.get("last_ts_us") or 0))
        for raw in data.get("enterprises") or []:
            org = Enterprise(**raw)
            standin._enterprises[org.enterprise_id] = org
        for raw in data.get("workspaces") or []:
            ws = Workspace(**raw)
            standin._workspaces[ws.team_id] = ws
        for raw in data.get("users") or []:
            user = _User(**dict(raw, teams=set(raw.get("teams") or ())))
            standin._users[user.user_id] = user
        for channel in data.get("channels") or []:
            standin._channels[channel["id"]] = channel
        for raw in data.get("installs") or []:
            inst = _Install(**dict(raw, key=key(raw["key"])))
            standin._installs[inst.key] = inst
        standin._bot_ids.update(data.get("bot_ids") or ())
        for raw in data.get("tokens") or []:
            token = _Token(**dict(raw, install_key=key(raw["install_key"])))
            standin._tokens[token.value] = token
        standin._messages.update(data.get("messages") or {})
        standin._ephemerals.update(data.get("ephemerals") or {})
        standin._views.update(data.get("views") or {})
        standin._responses.extend(data.get("responses") or [])


def save(standin: _Core, path: Path, previous: str | None = None) -> str:
    """Write the snapshot to ``path`` atomically, readable by the owner only; returns what was written.

    ``previous`` is what the last call returned: when nothing changed, nothing is written.
    """
    text = json.dumps(snapshot(standin), separators=(",", ":"))
    if text == previous:
        return text
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return text


def load(standin: _Core, path: Path) -> bool:
    """Restore from ``path`` when it exists; returns whether anything was loaded."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    restore(standin, json.loads(text))
    return True

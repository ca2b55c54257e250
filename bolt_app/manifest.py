"""Reads `manifest.yml`, the single source of truth for scopes, events and features."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = PROJECT_ROOT / "manifest.yml"


@lru_cache(maxsize=4)
def load_manifest(path: str | Path = MANIFEST_PATH) -> dict[str, Any]:
    """The manifest as a dict (cached: it is read on every app build in tests)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a YAML mapping")
    return data


def manifest_scopes(manifest: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(bot scopes, user scopes) declared in the manifest."""
    manifest = manifest if manifest is not None else load_manifest()
    scopes = (manifest.get("oauth_config") or {}).get("scopes") or {}
    return list(scopes.get("bot") or []), list(scopes.get("user") or [])


def app_name(manifest: dict[str, Any] | None = None) -> str:
    manifest = manifest if manifest is not None else load_manifest()
    return str((manifest.get("display_information") or {}).get("name") or "Slack app")


def app_description(manifest: dict[str, Any] | None = None) -> str | None:
    manifest = manifest if manifest is not None else load_manifest()
    return (manifest.get("display_information") or {}).get("description")


def slash_commands(manifest: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(command, description) for each slash command declared in the manifest, in order."""
    manifest = manifest if manifest is not None else load_manifest()
    commands = (manifest.get("features") or {}).get("slash_commands") or []
    return [(str(c["command"]), str(c.get("description") or "")) for c in commands if c.get("command")]


def manifest_json(manifest: dict[str, Any] | None = None, *, socket_mode: bool | None = None) -> str:
    """The manifest as JSON (what the Slack CLI and the app-config API take).

    `socket_mode=True` gives the local-development variant: Socket Mode on and no request
    URLs (Slack rejects request URLs on a Socket Mode app), without a second copy on disk.
    """
    data = json.loads(json.dumps(manifest if manifest is not None else load_manifest()))
    if socket_mode is not None:
        settings = data.setdefault("settings", {})
        settings["socket_mode_enabled"] = socket_mode
        if socket_mode:
            for section in ("event_subscriptions", "interactivity"):
                if isinstance(settings.get(section), dict):
                    settings[section].pop("request_url", None)
            for command in (data.get("features") or {}).get("slash_commands") or []:
                command.pop("url", None)
    return json.dumps(data, indent=2)

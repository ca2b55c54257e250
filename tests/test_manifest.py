"""manifest.yml validates against Slack's official schema and declares what the app needs."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections import defaultdict
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7

from bolt_app.manifest import load_manifest, manifest_json, manifest_scopes
from tests.support import PROJECT_ROOT

# Slack's published schema, carried in the repository (see its SOURCE.md): a clone anywhere runs these.
SCHEMA_DIR = PROJECT_ROOT / "schemas" / "slack-manifest"


def manifest_validator() -> jsonschema.Draft7Validator:
    """The top-level schema refers to the versioned ones by remote URL; serve them from disk."""
    if not (SCHEMA_DIR / "manifest.schema.json").exists():
        pytest.fail(f"Slack's manifest schema is missing from {SCHEMA_DIR}: restore it from git (see SOURCE.md there)")
    top = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    resources = []
    for version in ("1.0.0", "2.0.0"):
        schema = json.loads((SCHEMA_DIR / f"manifest.schema.{version}.json").read_text())
        uri = f"https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/manifest.schema.{version}.json"
        resources.append((uri, DRAFT7.create_resource(schema)))
    return jsonschema.Draft7Validator(top, registry=Registry().with_resources(resources))


def validate(manifest: dict) -> None:
    errors = sorted(manifest_validator().iter_errors(manifest), key=str)
    assert not errors, "\n".join(e.message for e in errors)


def test_the_schema_copy_is_slacks_unchanged_with_its_license() -> None:
    source = (SCHEMA_DIR / "SOURCE.md").read_text()
    listed = dict(line.split()[::-1] for line in re.findall(r"(?m)^[0-9a-f]{64}  \S+$", source))
    assert set(listed) == {p.name for p in SCHEMA_DIR.glob("manifest.schema*.json")}
    for name, digest in listed.items():
        assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (SCHEMA_DIR / "LICENSE").read_text()


def test_manifest_validates_against_slack_schema() -> None:
    validate(load_manifest())


def test_socket_mode_variant_validates_and_has_no_request_urls() -> None:
    variant = json.loads(manifest_json(socket_mode=True))
    validate(variant)
    assert variant["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in variant["settings"]["event_subscriptions"]
    assert load_manifest()["settings"]["socket_mode_enabled"] is False  # the file itself is untouched


def test_schema_check_catches_a_broken_manifest() -> None:
    broken = json.loads(manifest_json())
    broken["display_information"]["name"] = ""
    broken["settings"]["surprise"] = True
    with pytest.raises(AssertionError):
        validate(broken)


def test_manifest_has_what_the_foundation_needs() -> None:
    manifest = load_manifest()
    settings = manifest["settings"]
    assert settings["token_rotation_enabled"] is True
    assert {"app_mention", "app_uninstalled", "tokens_revoked"} <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["interactivity"]["is_enabled"] is True
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
    bot, _ = manifest_scopes(manifest)
    assert {"app_mentions:read", "chat:write"} <= set(bot)


# ----------------------------------------------------------------------------- manifest ↔ listeners

# Scopes each Web API method the listeners and features call needs (None: no scope). A call not
# listed here fails the test below: declare its scope here and in manifest.yml.
METHOD_SCOPES = {
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "views_open": None,
    "views_publish": None,
}
EVENT_SCOPES = {"app_mention": "app_mentions:read", "app_home_opened": None, "app_uninstalled": None,
                "tokens_revoked": None}
API_CALL = re.compile(r"\.((?:chat|views|conversations|users|reactions|pins|files|im)_[A-Za-z]+)\(")


def registered_listeners(app) -> dict[str, set[str]]:
    """What the app's listeners answer to, read from Bolt's built-in matchers:
    {"command": {"/poll"}, "event": {...}, "global_shortcut": {...}, "action": {...}, ...}."""
    found: dict[str, set[str]] = defaultdict(set)
    for listener in app._listeners:
        for matcher in listener.matchers:
            func = getattr(matcher, "func", None)
            if func is None:
                continue
            kind = func.__qualname__.split(".")[0]
            names = inspect.getclosurevars(func).nonlocals
            value = next(names[k] for k in ("command", "callback_id", "event_type", "constraints") if k in names)
            found[kind].add(value.pattern if isinstance(value, re.Pattern) else value)
    return found


def test_manifest_declares_exactly_what_the_listeners_handle(settings) -> None:
    from bolt_app.app import create_app
    from bolt_app.revocation import REVOCATION_EVENTS

    registered = registered_listeners(create_app(settings))
    manifest = load_manifest()
    features, app_settings = manifest["features"], manifest["settings"]

    assert {c["command"] for c in features.get("slash_commands", [])} == registered["command"]
    shortcuts = features.get("shortcuts", [])
    assert {s["callback_id"] for s in shortcuts if s["type"] == "global"} == registered["global_shortcut"]
    assert {s["callback_id"] for s in shortcuts if s["type"] == "message"} == registered["message_shortcut"]
    assert "shortcut" not in registered  # type-less shortcut listeners could not be checked

    # Revocation events are handled before the ack by a middleware (bolt_app.revocation).
    events = set(app_settings["event_subscriptions"]["bot_events"])
    assert events == registered["event"] | REVOCATION_EVENTS
    assert features.get("app_home", {}).get("home_tab_enabled", False) == ("app_home_opened" in events)
    interactive = bool(registered["action"] or registered["view_submission"] or shortcuts)
    assert app_settings["interactivity"]["is_enabled"] == interactive

    # Scopes: exactly those the events and the Web API calls in listeners and features need.
    sources = [*(PROJECT_ROOT / "bolt_app" / "listeners").rglob("*.py"), *(PROJECT_ROOT / "bolt_app" / "features").rglob("*.py")]
    methods = {m for path in sources for m in API_CALL.findall(path.read_text())}
    unknown = methods - METHOD_SCOPES.keys()
    assert not unknown, f"declare the scopes of {sorted(unknown)} in METHOD_SCOPES and manifest.yml"
    needed = {METHOD_SCOPES[m] for m in methods} | {EVENT_SCOPES[e] for e in events}
    if registered["command"] or shortcuts:
        needed.add("commands")
    bot, user = manifest_scopes(manifest)
    assert set(bot) == needed - {None} and user == []
    for command in features.get("slash_commands", []):
        assert command["url"].endswith("/slack/events")

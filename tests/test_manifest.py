"""manifest.yml validates against Slack's official schema and declares what the app needs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT7

from bolt_app.manifest import load_manifest, manifest_json, manifest_scopes
from tests.support import PROJECT_ROOT

SCHEMA_DIR = PROJECT_ROOT.parent / "shared" / "slack-manifest-schema"


def manifest_validator() -> jsonschema.Draft7Validator:
    """The top-level schema refers to the versioned ones by remote URL; serve them from disk."""
    if not SCHEMA_DIR.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA_DIR}")
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

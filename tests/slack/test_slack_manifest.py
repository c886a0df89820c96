"""The shipped app manifests subscribe to what the connector handles, with the scopes it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opencomputer.connectors.slack.connector import EVENTS_PATH
from opencomputer.connectors.slack.translate import HANDLED_EVENTS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "slack"
NEEDED_SCOPE = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.mpim": "mpim:history",
    "reaction_added": "reactions:read",
    "reaction_removed": "reactions:read",
}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", ["manifest.yml", "manifest-socket-mode.yml"])
def test_manifest_matches_connector(name: str) -> None:
    manifest = load(name)
    settings, features = manifest["settings"], manifest["features"]
    events = settings["event_subscriptions"]["bot_events"]
    assert {e.split(".")[0] for e in events} == HANDLED_EVENTS
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {NEEDED_SCOPE[e] for e in events} | {
        "chat:write",
        "commands",
        "files:read",
        "files:write",
    } <= scopes
    assert [c["command"] for c in features["slash_commands"]] == ["/oc"]
    assert settings["interactivity"]["is_enabled"] is False
    assert features["bot_user"]["display_name"]
    socket = settings["socket_mode_enabled"]
    assert socket is (name == "manifest-socket-mode.yml")
    urls = [settings["event_subscriptions"].get("request_url")]
    urls += [c.get("url") for c in features["slash_commands"]]
    if socket:
        assert urls == [None, None]
    else:
        assert all(u.startswith("https://") and u.endswith(EVENTS_PATH) for u in urls)

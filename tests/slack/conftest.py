"""Fixtures for the Slack tests live in ``slack_helpers`` (importable by name from tests)."""

from tests.slack.slack_helpers import fake_slack, serve, slack_settings

__all__ = ["fake_slack", "serve", "slack_settings"]

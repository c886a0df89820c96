"""Slack connector (slack-bolt async): Events API over HTTP or Socket Mode."""

from connectors.slack.connector import SlackConnector

__all__ = ["SlackConnector"]

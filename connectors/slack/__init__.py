"""Slack connector (slack-bolt async): Events API over HTTP or Socket Mode."""

from opencomputer.connectors.slack.connector import SlackConnector

__all__ = ["SlackConnector"]

"""Telegram connector (python-telegram-bot): polling or webhook, HTML replies, reactions."""

from opencomputer.connectors.telegram.connector import TelegramConnector, TelegramOptions

__all__ = ["TelegramConnector", "TelegramOptions"]

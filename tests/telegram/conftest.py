"""Fixtures for the Telegram tests live in ``telegram_helpers`` (importable from tests)."""

from tests.telegram.telegram_helpers import _ptb_timedelta, connector, sink, tg, tg_settings

__all__ = ["_ptb_timedelta", "connector", "sink", "tg", "tg_settings"]

"""The OpenAI-compatible API channel (``OC_API_ENABLED``; see ``docs/api.md``)."""

from __future__ import annotations

from opencomputer.connectors.api.connector import ApiConnector

__all__ = ["ApiConnector"]

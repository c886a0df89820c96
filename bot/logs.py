"""Logging: secrets masked, a turn id on every line, text or JSON lines.

A *turn id* names the handling of one inbound message. It is derived from the platform and the
platform's event id (:func:`turn_id_for`), so the gateway that accepted a message and the worker
that answers it (another process, maybe another machine) log the same id without passing it
along. :func:`turn_context` sets it for the code running inside (a ``contextvars`` variable, so
it follows ``await`` and the tasks a turn starts); :class:`TurnIdFilter` puts it on each record.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

__all__ = [
    "JsonFormatter",
    "RedactingFilter",
    "TurnIdFilter",
    "current_turn_id",
    "setup_logging",
    "turn_context",
    "turn_id_for",
]

_TURN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("oc_turn_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s%(turn_tag)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "turn_id", "turn_tag"}


def turn_id_for(platform: str, event_id: str) -> str:
    """The turn id of a platform event: the same in every process that handles it."""
    digest = hashlib.blake2b(f"{platform}\0{event_id}".encode(), digest_size=6).hexdigest()
    return f"t-{digest}"


def current_turn_id() -> str | None:
    """The turn id of the code running now, if it runs inside a turn."""
    return _TURN_ID.get()


@contextlib.contextmanager
def turn_context(turn_id: str | None) -> Iterator[str | None]:
    """Log ``turn_id`` on every record made inside the block (``None`` clears it)."""
    token = _TURN_ID.set(turn_id)
    try:
        yield turn_id
    finally:
        _TURN_ID.reset(token)


class TurnIdFilter(logging.Filter):
    """Adds ``turn_id`` (or ``None``) and ``turn_tag`` (`` [t-…]`` or empty) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        turn = getattr(record, "turn_id", None) or _TURN_ID.get()
        record.turn_id = turn
        record.turn_tag = f" [{turn}]" if turn else ""
        return True


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record's final text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Also the URL-encoded forms: a token inside a logged URL is often percent-encoded.
        variants = {
            v for s in secrets if len(s) >= 6 for v in (s, quote(s, safe=""), quote_plus(s))
        }
        self.secrets = sorted(variants, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the message and the traceback; never drops the record."""
        if not self.secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc = record.exc_text or ""
        for secret in self.secrets:
            text = text.replace(secret, "***")
            exc = exc.replace(secret, "***")
        record.msg, record.args = text, None
        record.exc_text = exc or None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, ``turn_id``, extras.

    Values passed with ``extra=`` are kept (non-JSON values as their ``str``), so a log shipper
    can index them; the exception, if any, is in ``exc``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "turn_id": getattr(record, "turn_id", None) or _TURN_ID.get(),
            "pid": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return orjson.dumps(entry, default=str).decode()


def _iso(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def setup_logging(
    level: str, secrets: Iterable[str] = (), stream: object = None, *, fmt: str = "text"
) -> None:
    """Configure the root logger once: ``text`` (time, level, module, turn, message) or ``json``."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, "%H:%M:%S"))
    handler.addFilter(TurnIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))

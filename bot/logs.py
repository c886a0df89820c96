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
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

__all__ = [
    "SDK_LOGGERS",
    "SECRETS",
    "JsonFormatter",
    "RedactingFilter",
    "SecretRegistry",
    "TurnIdFilter",
    "add_secrets",
    "current_turn_id",
    "mask",
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


# ``scheme://user:PASSWORD@host``: the password part of any URL (database, Redis, proxies...).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)")
_MIN_SECRET = 6  # shorter values would mask ordinary words everywhere


class SecretRegistry:
    """The secret values to mask, which grows as they become known.

    The server's own secrets are added when logging is set up, each plugin's secrets when the
    loader reads its settings. Logging is process-wide, and so is :data:`SECRETS`.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []

    def add(self, values: Iterable[str]) -> None:
        """Mask ``values`` (and their URL-encoded forms) from now on."""
        new = {
            v
            for s in values
            if s and len(s) >= _MIN_SECRET
            for v in (s, quote(s, safe=""), quote_plus(s))
        } - self._values
        if new:
            self._values |= new
            self._ordered = sorted(self._values, key=len, reverse=True)

    def clear(self) -> None:
        """Forget every value (logging is being set up afresh)."""
        self._values, self._ordered = set(), []

    def __iter__(self) -> Iterator[str]:
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)


SECRETS = SecretRegistry()
"""Every secret this process knows of; :func:`mask` hides them."""


def add_secrets(values: Iterable[str]) -> None:
    """Register secret values (a plugin's, the server's) to mask in logs and prompts."""
    SECRETS.add(values)


def mask(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with URL passwords and every known secret value replaced by ``***``.

    Used for log lines and for tool output before the model reads it: one rule for both.
    """
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    for secret in SECRETS if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Masks URL passwords and every known secret value in a record's text and traceback."""

    def __init__(self, secrets: Iterable[str] = (), registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = SECRETS if registry is None else registry
        self.registry.add(secrets)

    @property
    def secrets(self) -> list[str]:
        """The values masked now (longest first)."""
        return list(self.registry)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the message, its arguments, extras and traceback; never drops the record."""
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: keep what there is, masked
            text = f"{record.msg} {record.args!r}"
        record.msg, record.args = mask(text, self.registry), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text, self.registry)
        if record.stack_info:
            record.stack_info = mask(record.stack_info, self.registry)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask(value, self.registry))
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


SDK_LOGGERS = (
    "httpx",
    "httpcore",
    "aiohttp",
    "telegram",
    "discord",
    "slack_sdk",
    "slack_bolt",
    "nio",
    "asyncio",
    "urllib3",
    "websockets",
    "openai",
    "sqlalchemy.engine",
    "aiosqlite",
    "redis",
    "mcp",
    "alembic",
)
"""Libraries that log request bodies, headers and connection strings at DEBUG."""
# chatty even at INFO (sqlalchemy.engine: every statement; alembic: each migration step)
_QUIET = ("httpx", "httpcore", "aiosqlite", "asyncio", "sqlalchemy.engine", "alembic")


def setup_logging(
    level: str,
    secrets: Iterable[str] = (),
    stream: object = None,
    *,
    fmt: str = "text",
    sdk_debug: bool = False,
) -> None:
    """Configure the root logger once: ``text`` (time, level, module, turn, message) or ``json``.

    Every line is masked (:func:`mask`). Library loggers (:data:`SDK_LOGGERS`) stay at INFO or
    above even when ``level`` is DEBUG, because their DEBUG lines carry tokens in URLs and
    headers; ``sdk_debug`` (``OC_LOG_SDK_DEBUG=1``) lets them log DEBUG when ``level`` is DEBUG.
    """
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, "%H:%M:%S"))
    handler.addFilter(TurnIdFilter())
    SECRETS.clear()  # set up afresh: these secrets, and the plugins' as they load
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    wanted = logging.getLevelName(level)
    numeric = wanted if isinstance(wanted, int) else logging.INFO
    for name in SDK_LOGGERS:
        floor = logging.WARNING if name in _QUIET else logging.INFO
        if sdk_debug and numeric <= logging.DEBUG:
            floor = logging.DEBUG
        logging.getLogger(name).setLevel(max(floor, numeric))

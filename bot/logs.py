"""Readable logs with secrets masked: a token must never reach a log line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["RedactingFilter", "setup_logging"]


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record's final text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Also the URL-encoded forms: a token inside a logged URL is often percent-encoded.
        variants = {v for s in secrets if len(s) >= 6 for v in (s, quote(s, safe=""), quote_plus(s))}
        self.secrets = sorted(variants, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
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


def setup_logging(level: str, secrets: Iterable[str] = (), stream: object = None) -> None:
    """Configure the root logger once: time, level, module, message."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))

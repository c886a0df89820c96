"""The ``api_keys`` table (revision ``0004_api_keys``)."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel

__all__ = ["ApiKeyRow"]


def _now() -> float:
    return time.time()


class ApiKeyRow(SQLModel, table=True):
    """One bearer key: only its SHA-256 digest is stored, never the key.

    ``prefix`` (the key's first characters) lets ``opencomputer keys list`` show which key a
    row is without storing anything that would let someone use it.
    """

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    person: str = Field(index=True, max_length=255)
    name: str = Field(default="", max_length=255)
    prefix: str = Field(max_length=16)
    digest: str = Field(unique=True, index=True, max_length=64)
    created_at: float = Field(default_factory=_now)
    revoked_at: float | None = Field(default=None)

"""The schedules table (on the shared ``SQLModel.metadata``)."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel

__all__ = ["ScheduleRow"]


def _now() -> float:
    return time.time()


class ScheduleRow(SQLModel, table=True):
    """One reminder or recurring task, with where to deliver it.

    ``next_run`` is a UTC timestamp; ``repeat`` is a cron spec (empty for a one-off) read in
    ``tz``, so "every Monday at 9" stays at 9 across daylight-saving changes.
    """

    __tablename__ = "schedules"

    id: int | None = Field(default=None, primary_key=True)
    person: str = Field(index=True, max_length=255)
    platform: str = Field(max_length=32)
    chat_id: str = Field(max_length=255)
    chat_kind: str = Field(default="direct", max_length=16)
    thread_id: str | None = Field(default=None, max_length=255)
    user_id: str = Field(max_length=255)
    user_name: str = Field(default="", max_length=255)
    action: str = Field(default="remind", max_length=16, description="remind or run")
    text: str
    repeat: str = Field(default="", max_length=255)
    tz: str = Field(default="UTC", max_length=64)
    next_run: float = Field(index=True)
    last_run: float | None = None
    runs: int = 0
    status: str = Field(default="active", max_length=16, index=True)
    created_at: float = Field(default_factory=_now)

"""The ``web_messages`` table (revision ``0006_web_chat``): what a browser chat shows.

Other platforms keep their own copy of a conversation (Telegram shows its history itself); a
browser does not, so the web channel keeps every message it showed, the visitor's and the
bot's (with the text of its latest edit), to show them again after a reload, a reconnect or a
server restart.
"""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel, UniqueConstraint

__all__ = ["WebMessageRow"]


def _now() -> float:
    return time.time()


class WebMessageRow(SQLModel, table=True):
    """One message of a visitor's chat, as the page shows it."""

    __tablename__ = "web_messages"
    __table_args__ = (UniqueConstraint("chat_id", "message_id", name="uq_web_message"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_id: str = Field(index=True, max_length=64)
    message_id: str = Field(max_length=96)
    role: str = Field(max_length=8, description="'user' (the visitor) or 'bot'.")
    text: str
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)

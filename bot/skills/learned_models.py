"""Tables of learned skills, the turns they were offered in, and missing capabilities.

A learned skill lives in the database, not in a folder: every process (scale-out workers, the
CLI) reads the same rows, and an admin's edit or delete needs no file system access.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel, UniqueConstraint

__all__ = ["CapabilityGapRow", "LearnedSkillRow", "LearnedTurnRow", "Status"]


class Status:
    """Where a learned skill stands."""

    PENDING = "pending"  # written after outside content: waits for an admin's approval
    CANDIDATE = "candidate"  # offered in a share of matching turns, rated
    LIVE = "live"  # offered in every matching turn
    RETIRED = "retired"  # no longer offered (kept for the record)


class LearnedSkillRow(SQLModel, table=True):
    """A skill the model drafted from a liked turn (or an admin's edit of one)."""

    __tablename__ = "learned_skills"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    description: str = Field(max_length=1024)
    body: str
    # The person it is for (their direct chats only); None: everyone.
    owner: str | None = Field(default=None, index=True, max_length=300)
    status: str = Field(max_length=16)
    pinned: bool = False
    tainted: bool = False  # the turn it came from had read outside content
    source_reply: int | None = None
    created_at: float
    updated_at: float
    note: str = ""


class LearnedTurnRow(SQLModel, table=True):
    """One matching turn of a learned skill: offered or held back (the control), and used."""

    __tablename__ = "learned_skill_turns"
    __table_args__ = (UniqueConstraint("skill", "reply_id"),)

    id: int | None = Field(default=None, primary_key=True)
    skill: str = Field(index=True, max_length=64)
    reply_id: int = Field(index=True)
    offered: bool
    used: bool = False
    at: float


class CapabilityGapRow(SQLModel, table=True):
    """A turn that failed for want of a tool, with a short example of what was asked."""

    __tablename__ = "capability_gaps"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(index=True)
    person: str = Field(max_length=300)
    account: str = Field(index=True, max_length=300)
    conversation: str = Field(max_length=300)
    direct: bool
    kind: str = Field(max_length=16)  # "cannot", "no_tool", "disliked"
    keywords: str = Field(max_length=300)
    example: str = Field(max_length=300)
    reply_id: int | None = None

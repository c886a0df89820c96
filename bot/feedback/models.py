"""Tables of the feedback and prompt-tuning feature (on the shared ``SQLModel.metadata``).

Variants are immutable once written: a revision is a new row (``version`` + 1, ``parent_id``),
so every reply keeps pointing at the exact text that produced it, and a status change is the
only mutation (each one is recorded in ``prompt_tuning_events`` so that it can be undone).
``reply_id`` columns carry no foreign key on purpose: ``/forget`` deletes replies first and
then calls our forget hook, which a foreign key would turn into an error on PostgreSQL.
"""

from __future__ import annotations

import time
from enum import StrEnum

from sqlmodel import Field, SQLModel, UniqueConstraint

__all__ = [
    "Author",
    "FeedbackNoteRow",
    "FeedbackVoteRow",
    "PromptVariantRow",
    "ReplyFailureRow",
    "Scope",
    "Status",
    "TuningEventRow",
    "VariantAssignmentRow",
]


def _now() -> float:
    return time.time()


class Scope(StrEnum):
    """Where a variant applies: everywhere, on one platform, or in one chat."""

    GLOBAL = "global"
    PLATFORM = "platform"
    CHAT = "chat"


class Status(StrEnum):
    """Life cycle of a variant.

    ``active`` is the incumbent of its scope, ``candidate`` competes with it, ``pinned`` is
    served exclusively in its scope (an admin's decision, no exploration), ``retired`` is never
    served.
    """

    CANDIDATE = "candidate"
    ACTIVE = "active"
    PINNED = "pinned"
    RETIRED = "retired"


class Author(StrEnum):
    """Who wrote the template: a person or the model (machine-written candidates)."""

    HUMAN = "human"
    MACHINE = "machine"


class PromptVariantRow(SQLModel, table=True):
    """One versioned system-prompt template."""

    __tablename__ = "prompt_variants"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, index=True)
    version: int = 1
    template: str
    scope: str = Field(default=Scope.GLOBAL, max_length=16)
    scope_key: str = Field(default="", max_length=512)
    status: str = Field(default=Status.CANDIDATE, max_length=16, index=True)
    author: str = Field(default=Author.HUMAN, max_length=16)
    created_by: str = Field(default="", max_length=255)
    parent_id: int | None = Field(default=None, foreign_key="prompt_variants.id")
    replaced_id: int | None = Field(default=None, description="Variant this one superseded.")
    note: str = ""
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)
    promoted_at: float | None = None


class FeedbackVoteRow(SQLModel, table=True):
    """One user's current vote on one reply (one vote per user per reply)."""

    __tablename__ = "feedback_votes"
    __table_args__ = (UniqueConstraint("reply_id", "user_key", name="uq_feedback_vote"),)

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(index=True)
    user_key: str = Field(max_length=255, index=True)
    variant_id: int | None = Field(default=None, index=True)
    model: str = Field(default="", max_length=255)
    conversation: str = Field(default="", max_length=512)
    score: int
    emoji: str = Field(default="", max_length=64)
    blamed: bool = Field(
        default=True, description="False when a failure, not the prompt, is at fault."
    )
    created_at: float = Field(default_factory=_now, index=True)


class FeedbackNoteRow(SQLModel, table=True):
    """A reason given in words (``/feedback <text>`` or a reply to a rated answer)."""

    __tablename__ = "feedback_notes"

    id: int | None = Field(default=None, primary_key=True)
    user_key: str = Field(max_length=255, index=True)
    conversation: str = Field(default="", max_length=512)
    reply_id: int | None = Field(default=None, index=True)
    variant_id: int | None = None
    text: str
    created_at: float = Field(default_factory=_now)


class ReplyFailureRow(SQLModel, table=True):
    """A reply produced while the model or a tool failed: its ratings are not the prompt's."""

    __tablename__ = "reply_failures"

    id: int | None = Field(default=None, primary_key=True)
    reply_id: int = Field(unique=True)
    variant_id: int | None = Field(default=None, index=True)
    conversation: str = Field(default="", max_length=512)
    kind: str = Field(default="", max_length=32)
    detail: str = ""
    created_at: float = Field(default_factory=_now)


class VariantAssignmentRow(SQLModel, table=True):
    """Which variant a conversation is using, so it stays consistent for a while."""

    __tablename__ = "prompt_assignments"

    conversation: str = Field(primary_key=True, max_length=512)
    variant_id: int
    epoch: int = 0
    turns: int = 0
    assigned_at: float = Field(default_factory=_now)


class TuningEventRow(SQLModel, table=True):
    """Every change to variants (who, why, and the status changes, so it can be undone)."""

    __tablename__ = "prompt_tuning_events"

    id: int | None = Field(default=None, primary_key=True)
    at: float = Field(default_factory=_now, index=True)
    kind: str = Field(max_length=32)
    variant_id: int | None = None
    actor: str = Field(default="", max_length=255)
    reason: str = ""
    changes: str = Field(default="[]", description="JSON [[variant_id, from, to], ...]")
    undone_by: int | None = None

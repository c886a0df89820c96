"""Only the indexes the queries need on the two tables every turn writes (issue 20).

Each index is one more B-tree page written per change of its column: a turn inserts a message
and a reply and moves the message's status twice and the reply's once, so the four indexes
on each table cost about a dozen page writes per turn. Kept or replaced, by the queries that
use them:

* ``inbound_messages``: ``(conversation)`` and ``(status)`` become one ``(conversation,
  status)``: a conversation's messages (the control room, ``/retry``'s last failed one,
  schedules, ``/forget``) and a scale-out worker's claim (a conversation's unfinished older
  messages) both read it; only status alone (the start-up recovery scan, the control room's
  failed list) no longer has an index, which reads the table once per start. ``(user_id)``
  stays for ``/export`` and ``/forget``; ``uq_inbound_event`` is the duplicate check.
* ``replies``: ``(status)`` goes (only the start-up scan for undelivered replies asked by it,
  once per start) and ``(variant_id)`` goes (only the tuner's whole-table count per variant
  read it); ``(inbound_id)`` and ``(conversation)`` stay.

Revision ID: 0012_lean_turn_indexes
Revises: 0011_voice_reply_owner
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0012_lean_turn_indexes"
down_revision = "0011_voice_reply_owner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the indexes no query needs; one composite for conversation and status."""
    op.create_index(
        "ix_inbound_messages_conversation_status",
        "inbound_messages",
        ["conversation", "status"],
        unique=False,
    )
    op.drop_index("ix_inbound_messages_conversation", table_name="inbound_messages")
    op.drop_index("ix_inbound_messages_status", table_name="inbound_messages")
    op.drop_index("ix_replies_status", table_name="replies")
    op.drop_index("ix_replies_variant_id", table_name="replies")


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

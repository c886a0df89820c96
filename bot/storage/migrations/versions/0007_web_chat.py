"""Messages of the web chat (issue 16): what a browser shows again after a reload or restart.

Revision ID: 0007_web_chat
Revises: 0006_skill_state
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_web_chat"
down_revision = "0006_skill_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``web_messages``: one row per message a visitor's chat shows."""
    op.create_table(
        "web_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=96), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "message_id", name="uq_web_message"),
    )
    op.create_index("ix_web_messages_chat_id", "web_messages", ["chat_id"], unique=False)


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

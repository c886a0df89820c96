"""Spoken replies per conversation (issue 15, bot/voice.py).

Revision ID: 0008_voice_replies
Revises: 0007_web_chat
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_voice_replies"
down_revision = "0007_web_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``voice_replies``: one row per conversation that has ``/voice on``."""
    op.create_table(
        "voice_replies",
        sa.Column("conversation", sa.String(length=300), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("conversation"),
    )


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

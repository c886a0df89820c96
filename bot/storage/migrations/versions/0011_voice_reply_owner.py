"""Who turned spoken replies on in a direct chat (issue 15, bot/voice.py): ``/forget`` and
``/export`` find the setting by the person's accounts, even after their messages are deleted.

Revision ID: 0011_voice_reply_owner
Revises: 0010_learned_skills
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_voice_reply_owner"
down_revision = "0010_learned_skills"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``voice_replies.set_by`` (NULL: a group's setting, or a row from before)."""
    with op.batch_alter_table("voice_replies") as batch:
        batch.add_column(sa.Column("set_by", sa.String(length=300), nullable=True))


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

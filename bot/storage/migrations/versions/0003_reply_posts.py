"""Platform messages of replies in progress (delivery protocol, issue 19).

Revision ID: 0003_reply_posts
Revises: 0002_pre_migrations_main
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opencomputer.bot.storage.migrations.ops import has_table

revision = "0003_reply_posts"
down_revision = "0002_pre_migrations_main"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``reply_posts`` (a release without migrations may have made it already)."""
    if has_table("reply_posts"):
        return
    op.create_table(
        "reply_posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=255), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "position", name="uq_reply_post"),
    )


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

"""Skill enablement, globally or per chat (issue 17, bot/skills/state.py).

Revision ID: 0006_skill_state
Revises: 0005_inbound_attachments
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_skill_state"
down_revision = "0005_inbound_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``skill_state``: one decision per skill and scope (``*`` or a chat key)."""
    op.create_table(
        "skill_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("skill", "scope"),
    )
    op.create_index(op.f("ix_skill_state_skill"), "skill_state", ["skill"], unique=False)


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

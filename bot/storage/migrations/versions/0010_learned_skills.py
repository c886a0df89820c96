"""Learned skills, the turns they were offered in, missing capabilities (issue 17,
bot/skills/learned_models.py).

Revision ID: 0010_learned_skills
Revises: 0009_control_room
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_learned_skills"
down_revision = "0009_control_room"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``learned_skills``, ``learned_skill_turns`` and ``capability_gaps``."""
    op.create_table(
        "learned_skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("tainted", sa.Boolean(), nullable=False),
        sa.Column("source_reply", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_learned_skills_name"), "learned_skills", ["name"], unique=True)
    op.create_index(op.f("ix_learned_skills_owner"), "learned_skills", ["owner"], unique=False)
    op.create_table(
        "learned_skill_turns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=64), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=False),
        sa.Column("offered", sa.Boolean(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("skill", "reply_id"),
    )
    op.create_index(
        op.f("ix_learned_skill_turns_skill"), "learned_skill_turns", ["skill"], unique=False
    )
    op.create_index(
        op.f("ix_learned_skill_turns_reply_id"), "learned_skill_turns", ["reply_id"], unique=False
    )
    op.create_table(
        "capability_gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("person", sa.String(length=300), nullable=False),
        sa.Column("account", sa.String(length=300), nullable=False),
        sa.Column("conversation", sa.String(length=300), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("keywords", sa.String(length=300), nullable=False),
        sa.Column("example", sa.String(length=300), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_capability_gaps_at"), "capability_gaps", ["at"], unique=False)
    op.create_index(
        op.f("ix_capability_gaps_account"), "capability_gaps", ["account"], unique=False
    )


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

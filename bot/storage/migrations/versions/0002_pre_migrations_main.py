"""Changes between 0aa9263 and the last release without migrations.

Link codes carry the issuer's and the joiner's details (both sides confirm a link), memories
record where they were learned (rows from before read as learned in a direct chat: private),
plugin secret grants and the command replay guard get their tables. A database that already
has some of this (made by a release in between) keeps it.

Revision ID: 0002_pre_migrations_main
Revises: 0001_baseline
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opencomputer.bot.storage.migrations.ops import add_missing_columns, has_table

revision = "0002_pre_migrations_main"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and tables; existing rows get the columns' defaults."""
    add_missing_columns(
        "identity_link_codes",
        sa.Column("address", sa.String(length=600), nullable=False, server_default=""),
        sa.Column("joiner_key", sa.String(length=300), nullable=False, server_default=""),
        sa.Column("joiner_name", sa.String(length=300), nullable=False, server_default=""),
        sa.Column("joiner_address", sa.String(length=600), nullable=False, server_default=""),
    )
    add_missing_columns(
        "memories",
        sa.Column("origin", sa.String(length=16), nullable=False, server_default="direct"),
        sa.Column("origin_chat", sa.String(length=512), nullable=False, server_default=""),
    )
    if not has_table("plugin_grant"):
        op.create_table(
            "plugin_grant",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("plugin", sa.String(length=80), nullable=False),
            sa.Column("secret", sa.String(length=200), nullable=False),
            sa.Column("granted", sa.Boolean(), nullable=False),
            sa.Column("updated_at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("plugin", "secret"),
        )
        op.create_index("ix_plugin_grant_plugin", "plugin_grant", ["plugin"], unique=False)
    if not has_table("seen_command"):
        op.create_table(
            "seen_command",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("platform", sa.String(length=32), nullable=False),
            sa.Column("event_hash", sa.String(length=64), nullable=False),
            sa.Column("at", sa.Float(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("platform", "event_hash", name="uq_seen_command"),
        )
        op.create_index("ix_seen_command_at", "seen_command", ["at"], unique=False)


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

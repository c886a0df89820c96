"""Attachments of inbound messages (issue 15): a JSON column, so a message stored before a crash
fetches its files again after the restart.

Revision ID: 0005_inbound_attachments
Revises: 0004_api_keys
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_inbound_attachments"
down_revision = "0004_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``inbound_messages.attachments`` (NULL: no files, as for every older row)."""
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("attachments", sa.String(), nullable=True))


def downgrade() -> None:
    """Not supported: restore the backup taken before the upgrade instead."""
    raise NotImplementedError("downgrades are not supported; restore a backup")

"""Helpers for revisions that a database may already partly have.

Before migrations existed, each release created its new tables at start and added new columns
ad hoc, so a database made by a release between two revisions can hold some of a revision's
changes already. The revisions that cover that period (up to ``0003``) skip what exists;
later revisions need not (only Alembic changes the schema from then on).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["add_missing_columns", "has_table"]


def has_table(name: str) -> bool:
    """Whether the table exists."""
    return bool(sa.inspect(op.get_bind()).has_table(name))


def add_missing_columns(table: str, *columns: sa.Column[object]) -> None:
    """Add the columns the table lacks (NOT NULL ones need a ``server_default``: rows that
    exist already get it).
    """
    have = {col["name"] for col in sa.inspect(op.get_bind()).get_columns(table)}
    missing = [col for col in columns if col.name not in have]
    if not missing:
        return
    with op.batch_alter_table(table) as batch:
        for column in missing:
            batch.add_column(column)

"""What the database should look like: every table of every feature, in one metadata.

Feature modules define their tables on ``SQLModel.metadata`` as they are imported, so the
metadata a process holds depends on what it imported so far. Migrations, the schema check at
start and the tests need all of it at once: :func:`metadata` imports every module that defines
a table (:data:`MODEL_MODULES`; ``tests/core/test_migrations.py`` fails when a table lives
elsewhere).

Other tables in the same database are not ours to migrate: LangGraph's checkpoint tables (they
keep their own setup), ``alembic_version`` itself, and whatever a plugin or an operator adds.
:func:`include_name` keeps them out of comparisons.
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import MetaData
from sqlmodel import SQLModel

__all__ = ["MODEL_MODULES", "differences", "include_name", "metadata"]

MODEL_MODULES = (
    "opencomputer.bot.storage.models",
    "opencomputer.bot.access.models",
    "opencomputer.bot.admin.model_choice",
    "opencomputer.bot.apikeys.models",
    "opencomputer.bot.approvals",
    "opencomputer.bot.audit",
    "opencomputer.bot.control.models",
    "opencomputer.bot.dedupe",
    "opencomputer.bot.feedback.models",
    "opencomputer.bot.identity",
    "opencomputer.bot.memory.models",
    "opencomputer.bot.plugins.enablement",
    "opencomputer.bot.schedules.models",
    "opencomputer.bot.skills.learned_models",
    "opencomputer.bot.skills.state",
    "opencomputer.bot.voice",
    "opencomputer.connectors.web.models",
)
"""Every module that defines a table (``table=True``)."""


def metadata() -> MetaData:
    """``SQLModel.metadata`` with every table of every feature."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return SQLModel.metadata


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name``: compare only the tables our metadata declares."""
    if type_ == "table":
        return name in metadata().tables
    return True


def differences(connection: Any) -> list[Any]:
    """How the connected database differs from :func:`metadata` (empty when it matches)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return list(compare_metadata(context, metadata()))

"""Alembic migrations of every table, one revision history for SQLite and PostgreSQL.

``opencomputer db upgrade`` applies them (``bot/storage/migrate.py``); a developer adds one
with ``alembic revision --autogenerate -m "..."`` from the repository root (``alembic.ini``)
and edits it so that it never loses rows (``tests/core/test_migrations.py`` then checks the
head against the tables the code declares).
"""

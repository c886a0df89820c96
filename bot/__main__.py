"""``python -m opencomputer.bot`` runs the CLI (as ``python -m opencomputer`` does)."""

from opencomputer.bot.cli import main

main()

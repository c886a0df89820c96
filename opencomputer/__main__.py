"""``python -m opencomputer`` runs the CLI (the same as the ``opencomputer`` command)."""

from opencomputer.bot.cli import main

main()

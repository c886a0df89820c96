"""``python -m bot`` runs the CLI (same as the ``opencomputer`` command)."""

from bot.cli import main

main()

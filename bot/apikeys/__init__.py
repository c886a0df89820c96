"""Bearer keys of the OpenAI-compatible API (``connectors/api``), each scoped to one person.

``keys`` creates, lists, revokes and checks them; ``models`` is their table; ``cli`` is
``opencomputer keys``. Nothing is imported here, so the CLI stays quick to start.
"""

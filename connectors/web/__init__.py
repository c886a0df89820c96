"""The web chat (``/chat`` on the shared HTTP app): see ``connector.py`` and ``docs/web.md``.
Nothing is imported here, so reading the channel stays cheap.
"""

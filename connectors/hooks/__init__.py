"""Inbound webhooks (``POST /hooks/NAME``) as a channel: see ``connector.py`` and
``docs/webhooks.md``. Nothing is imported here, so reading the channel stays cheap.
"""

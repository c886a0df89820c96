"""The web control room: admins steer the bot from a browser under ``/ui`` (docs/web.md)."""

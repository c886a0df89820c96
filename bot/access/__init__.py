"""Access control: who may talk to the agent (DM policy, pairing, group allow-list, admins)."""

from opencomputer.bot.access.middleware import access_middleware
from opencomputer.bot.access.policy import AccessPolicy, Verdict

__all__ = ["AccessPolicy", "Verdict", "access_middleware"]

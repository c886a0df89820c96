"""What the admin commands are handed: the shape of the admin feature's shared services.

The command modules (``commands``, ``user_commands``, ``linking``, ``plugin_commands``) are
registered by ``bot.admin.feature``, which builds the concrete services. They type their
argument with these protocols rather than with the feature's class, so the dependency runs one
way (the feature imports the commands, never the reverse), and they need no ``bot.app``: only
the parts of the app listed in :class:`AdminApp`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opencomputer.bot.access.policy import AccessPolicy
    from opencomputer.bot.admin.model_choice import ModelChoice
    from opencomputer.bot.approvals import Approvals
    from opencomputer.bot.audit import AuditEntry
    from opencomputer.bot.config import Settings
    from opencomputer.bot.events import User
    from opencomputer.bot.hooks import Hooks
    from opencomputer.bot.identity import IdentityLinks
    from opencomputer.bot.ollama_pool import OllamaPool
    from opencomputer.bot.runtime import Runtime
    from opencomputer.bot.storage import SqlStore

__all__ = ["AdminApp", "AdminServices"]


class AdminApp(Protocol):
    """The parts of the running app the admin commands read (``bot.app.App`` has them)."""

    @property
    def settings(self) -> Settings:
        """Validated settings."""

    @property
    def store(self) -> SqlStore:
        """The database."""

    @property
    def llm(self) -> OllamaPool:
        """The model servers (``/model`` lists what they have)."""

    @property
    def runtime(self) -> Runtime:
        """The running runtime."""

    @property
    def model_status(self) -> str:
        """``ok``, ``unchecked`` or what is wrong with the model."""

    @property
    def hooks(self) -> Hooks:
        """The extension seam (``oc_forget``/``oc_export`` reach every feature's data)."""

    @property
    def extras(self) -> dict[str, Any]:
        """What features share by name (``plugins``, ``memory``...)."""

    async def readiness(self) -> dict[str, str]:
        """What ``/readyz`` reports."""


class AdminServices(Protocol):
    """What the admin commands share (``opencomputer.bot.admin.feature`` builds it)."""

    @property
    def app(self) -> AdminApp:
        """The running app."""

    @property
    def policy(self) -> AccessPolicy:
        """Roles, grants, invites."""

    @property
    def identity(self) -> IdentityLinks:
        """Linked accounts."""

    @property
    def approvals(self) -> Approvals:
        """Pending and decided approvals."""

    @property
    def models(self) -> ModelChoice:
        """The model chosen per chat or globally."""

    @property
    def forget_pending(self) -> dict[str, float]:
        """``/forget`` confirmations awaited, by account, with their deadline."""

    async def audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
        """Append to the audit log."""

    async def audit_recent(self, n: int, *, actor: str | None = None) -> list[AuditEntry]:
        """The newest audit entries."""

    async def person_accounts(self, user: User) -> tuple[str, list[str]]:
        """The person id and every linked account of ``user``."""

    async def decide(self, approval_id: int, approved: bool, by: User) -> str | None:
        """Record a decision on an approval; a line to show when it was refused."""

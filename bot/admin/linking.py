"""``/link`` and ``/unlink``: joining accounts to one person takes a yes from both.

Every step happens in direct chats only: a code shown in a group is a code handed to
everyone there. ``/link`` (account A, in its DM) gives a code; ``/link <code>`` (account B, in
its DM) asks A, in A's DM, naming B's platform and name; only A's ``/link confirm`` links.
Wrong codes are audited as guesses and throttled (:meth:`bot.identity.IdentityLinks.redeem`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.events import Address, ChatKind
from opencomputer.bot.identity import LinkRequest, Redeemed

if TYPE_CHECKING:
    from opencomputer.bot.admin.services import AdminServices

__all__ = ["dm_only", "in_direct_chat", "register_link_commands"]

_YES = frozenset({"confirm", "yes"})
_NO = frozenset({"deny", "no", "reject", "cancel"})


def in_direct_chat(ctx: CommandContext) -> bool:
    """Whether the command came from a one-to-one chat with the bot (not a group)."""
    return ctx.event.chat.kind == ChatKind.DIRECT


def dm_only(command: str) -> str:
    """The one-line answer a private command gives in a group (it reveals nothing)."""
    return f"/{command} works only in a direct message: send it to me privately."


def _shown(name: str) -> str:
    """A display name as quoted in a question (it is chosen by whoever redeemed the code)."""
    clean = " ".join(name.replace("`", "'").split())
    return (clean[:60] + "…") if len(clean) > 60 else clean or "(no name)"


def _question(request: LinkRequest, minutes: int) -> str:
    return (
        f"Someone used your link code: {_shown(request.joiner_name)} "
        f"({request.joiner}, on {request.joiner_platform}) asks to become one person with this "
        "account, sharing your memories, settings and data. If that is your own account, send "
        f"`/link confirm` within {minutes} minutes. If not, send `/link deny`: nothing is "
        "linked unless you confirm."
    )


def register_link_commands(router: CommandRouter, services: AdminServices) -> None:
    """Add ``/link`` and ``/unlink``."""
    identity = services.identity
    runtime = services.app.runtime
    minutes = max(1, round(identity.code_ttl / 60))

    async def tell(address: str, text: str) -> bool:
        if not address:
            return False
        try:
            await runtime.say(Address.parse(address), text)
        except LookupError:  # that platform's connector is not running here
            return False
        return True

    async def confirm(ctx: CommandContext, yes: bool) -> str:
        user = ctx.event.user
        request = await (identity.confirm(user) if yes else identity.deny(user))
        if request is None:
            return "No account is waiting for your confirmation."
        if not yes:
            await services.audit(user.key, "identity.link_denied", {"joiner": request.joiner})
            await tell(request.joiner_address, "The link was not confirmed; nothing changed.")
            return f"Refused: {request.joiner} is not linked to you."
        await services.audit(user.key, "identity.link", {"with": request.joiner})
        await tell(
            request.joiner_address,
            f"Linked: this account and {user.key} are now one person (shared memory and settings).",
        )
        return (
            f"Linked: this account and {request.joiner} are now one person "
            "(shared memory and settings). Send /unlink there to undo."
        )

    @router.command("link", args="[code|confirm|deny]")
    async def link(ctx: CommandContext) -> str:
        """Link your accounts on several apps, so I know they are one person."""
        if not in_direct_chat(ctx):
            return dm_only("link")
        user, arg = ctx.event.user, ctx.args.strip()
        if arg.lower() in _YES | _NO:
            return await confirm(ctx, arg.lower() in _YES)
        if not arg:
            new = await identity.new_code(user, ctx.event.address)
            return (
                f"Your link code is `{new}`. Within {minutes} minutes, send `/link {new}` to me "
                "in a direct message from your other account (on any app). I will then ask you "
                "here to confirm. The code works once; never share it."
            )
        outcome, request = await identity.redeem(arg, user, ctx.event.address)
        if outcome is Redeemed.THROTTLED:
            await services.audit(user.key, "identity.link_throttled")
            return "Too many wrong link codes: wait 15 minutes, then try again."
        if outcome is Redeemed.OWN:
            return "That is this account's own code: send it from your other account."
        if outcome is Redeemed.UNKNOWN:
            await services.audit(user.key, "identity.link_guess", {"length": len(arg)})
            return (
                "That code is unknown, expired or already used. "
                "Send /link on your other account for a new one."
            )
        asked = request is not None and await tell(
            request.issuer_address, _question(request, minutes)
        )
        await services.audit(
            user.key, "identity.link_requested", {"issuer": request.issuer if request else ""}
        )
        if not asked:
            return (
                "I could not reach the account that made this code. Send /link there for a "
                "new code, then try again."
            )
        return (
            "I asked the account that made this code to confirm. Once it answers "
            "`/link confirm`, the two accounts are one person; until then nothing is shared."
        )

    @router.command("unlink")
    async def unlink(ctx: CommandContext) -> str:
        """Separate this account from your other linked accounts."""
        if not in_direct_chat(ctx):
            return dm_only("unlink")
        if not await identity.unlink(ctx.event.user.key):
            return "This account is not linked to any other."
        await services.audit(ctx.event.user.key, "identity.unlink")
        return "Unlinked: this account is on its own again."

"""End to end on the terminal channel (/good, /bad) and the data-rights hooks."""

from __future__ import annotations

import io
from collections.abc import Callable

from opencomputer.bot.admin.data import forget_person
from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from opencomputer.connectors.terminal import TerminalConnector


async def test_good_and_bad_in_the_terminal_change_the_stored_vote(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    app = App(fb_settings())
    out = io.StringIO()
    script = io.StringIO("hello\n/good\n/bad\n")
    holder: list[TerminalConnector] = []

    def factory(_s: Settings, rt: object) -> list[TerminalConnector]:
        holder.append(
            TerminalConnector(
                app.runtime.emit, wait_idle=app.runtime.wait_idle, stdin=script,
                stdout=out, interactive=False, user="me",
            )
        )  # fmt: skip
        return holder

    await app.start(factory, http=False)  # type: ignore[arg-type]
    try:
        svc: FeedbackService = app.extras["feedback"]
        terminal = holder[0]
        seen: list[int] = []

        class Probe:
            @hookimpl(trylast=True)  # after the feedback feature's observer
            async def oc_reaction(self, reaction: object, reply_id: int | None) -> None:
                assert reply_id is not None
                seen.extend(v.score for v in await svc.repo.votes(reply_id))

        app.hooks.register(Probe())
        await terminal.run()
        assert "echo: hello" in out.getvalue()
        assert seen == [1, -1]  # /good stored +1, then /bad turned the same vote into -1
        post = (await svc.repo.posteriors([1]))[1]
        assert (post.up, post.down) == (0, 1)
    finally:
        await app.stop()


async def test_forget_and_export_hooks_cover_votes_and_notes(
    harness: Harness, service: FeedbackService
) -> None:
    await harness.say("hello")
    await harness.react(harness.last_message_id, "👍")
    await harness.command("feedback", "nice")
    await harness.say("hello", user="bob")
    await harness.react(harness.last_message_id, "👎", user="bob", chat="bob")
    rights = harness.app.hooks.pm.get_plugin("feedback-data")  # the feature's DataRights
    data = await rights.oc_export(person="p", accounts=["test:alice"])
    assert [v["score"] for v in data["feedback_votes"]] == [1]
    assert [n["text"] for n in data["feedback_notes"]] == ["nice"]
    gone = await rights.oc_forget(person="p", accounts=["test:alice"])
    assert gone == "1 feedback ratings and 1 feedback notes"
    assert (await service.repo.export(["test:alice"])) == {
        "feedback_votes": [],
        "feedback_notes": [],
    }
    assert len((await service.repo.export(["test:bob"]))["feedback_votes"]) == 1
    # her direct conversation's variant assignment is gone (row and memory); bob's stays
    assert await service.repo.assignment("test:alice") is None
    assert service.selector.assignments.get("test:alice") is None
    assert (await service.repo.assignment("test:bob")) is not None


async def test_forget_drops_assignments_of_conversations_left_without_messages(
    harness: Harness, service: FeedbackService
) -> None:
    """A DM whose chat id is not the user id, a thread of their DM, a group they shared."""
    await harness.say("hi", user="carol", chat="dm-carol")
    await harness.say("hi", user="carol", chat="carol", thread="t1")
    await harness.say("hi", user="carol", chat="team", group=True)
    await harness.say("hi", user="dave", chat="team", group=True)
    await harness.say("hi", user="dave", chat="dm-dave")
    keys = ["test:dm-carol", "test:carol:t1", "test:team", "test:dm-dave"]
    assert [await service.repo.assignment(k) is not None for k in keys] == [True] * 4
    drop = service.repo.forget_assignments
    dropped: list[list[str]] = []

    async def spy(accounts: list[str]) -> list[str]:
        dropped.append(sorted(await drop(accounts)))
        return dropped[-1]

    service.repo.forget_assignments = spy  # type: ignore[method-assign]
    await forget_person(harness.app, "test:carol", ["test:carol"])  # what /forget confirm runs
    assert dropped == [["test:carol:t1", "test:dm-carol"]]
    assert [await service.repo.assignment(k) is not None for k in keys] == [
        False, False, True, True,
    ]  # fmt: skip
    assert service.selector.assignments.get("test:dm-carol") is None
    assert service.selector.assignments.get("test:team") is not None
    assert await drop(["test:carol"]) == []

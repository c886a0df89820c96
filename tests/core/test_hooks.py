"""The extension seam (bot/hooks.py, bot/features.py): what a third-party feature can do, in
which order, and what a deployment can turn off, with the real app and its built-in features.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import ConfigError, Settings
from opencomputer.bot.features import ENTRY_POINT_GROUP, load_features
from opencomputer.bot.hooks import INBOUND_STAGES, Hooks, compose, hookimpl
from opencomputer.bot.runtime import Runtime
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

MakeSettings = Callable[..., Settings]

THIRD_PARTY = '''
from opencomputer import hookimpl

SEEN = []


class Shouting:
    """A third party's feature: its own model, a rule, a layer around the agent call."""

    @hookimpl(tryfirst=True)  # before the admin feature's per-chat choice
    def oc_choose_model(self, address):
        return "their-model:1b"

    @hookimpl
    def oc_inbound_rules(self):
        async def note(event, call_next):
            SEEN.append(("rule", getattr(event, "text", "")))
            await call_next(event)

        return [("annotate", note)]

    @hookimpl
    def oc_turn_layers(self):
        async def shout(call, call_next):
            call.text = call.text.upper()
            outcome = await call_next(call)
            SEEN.append(("answer", outcome.text))
            return outcome

        return [("input", shout)]


async def setup(app):
    app.hooks.register(Shouting(), "shouting")
'''


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A feature in a module of its own, announced through the entry-point group."""
    name = f"oc_feature_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(THIRD_PARTY), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = importlib.metadata.EntryPoint("shouting", f"{name}:setup", ENTRY_POINT_GROUP)
    real = importlib.metadata.entry_points

    def entry_points(**kw: Any) -> Any:
        found = real(**kw)
        return [*found, extra] if kw.get("group") == ENTRY_POINT_GROUP else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    yield name
    sys.modules.pop(name, None)


async def test_a_third_party_feature_changes_model_text_and_rules_through_the_seam(
    make_settings: MakeSettings, fake_ollama: FakeOllama, third_party: str
) -> None:
    fake_ollama.models.append("their-model:1b")
    fake_ollama.reply("quiet answer")
    async with Harness(make_settings()) as h:
        assert await h.say("hello there") == "quiet answer"
    request = fake_ollama.chats[-1]
    assert request["model"] == "their-model:1b"  # tryfirst: ahead of the admin feature's answer
    assert request["messages"][-1]["content"] == "HELLO THERE"  # its layer ran inside the turn
    seen = sys.modules[third_party].SEEN
    assert ("rule", "hello there") in seen and ("answer", "quiet answer") in seen


async def test_a_feature_turned_off_is_gone_and_the_rest_run(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("hi")
    async with Harness(make_settings(OC_FEATURES_OFF="feedback,observability")) as h:
        assert "feedback" not in h.app.extras and "memory" in h.app.extras
        assert h.app.commands.get("good") is None  # the feedback feature's command
        assert h.app.commands.get("approve") is not None  # admin stays
        assert await h.say("hello") == "hi"
        names = {name for name, _ in h.app.hooks.pm.list_name_plugin()}
        assert {"admin", "dedupe", "memory", "plugins"} <= names
        assert not names & {"feedback", "observability"}


@pytest.mark.parametrize(
    ("off", "expected"),
    [
        ("admin", "admin cannot be turned off"),
        ("dedupe,feedback", "dedupe cannot be turned off"),
        ("feedbak", "OC_FEATURES_OFF names feedbak, which no installed feature is"),
    ],
)
def test_features_that_cannot_be_off_or_do_not_exist_are_one_line(
    make_settings: MakeSettings, off: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_features(make_settings(OC_FEATURES_OFF=off))
    message = str(caught.value)
    assert expected in message and "\n" not in message


async def test_no_runtime_attribute_is_replaced_by_a_feature(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    """Every policy is the runtime's own method; the agent is the graph agent itself."""
    async with Harness(make_settings()) as h:
        runtime = h.app.runtime
        for name in (
            "choose_prompt",
            "choose_model",
            "choose_tools",
            "is_admin",
            "person_of",
            "route",
            "open_stream",
            "thread_id",
            "dispatch",
        ):
            assert name not in vars(runtime), name
            assert getattr(type(runtime), name) is getattr(Runtime, name)
        assert type(runtime.agent).__name__ == "GraphAgent"


def _rule(order: list[str], name: str) -> Any:
    """An inbound rule that notes its name and passes the event on."""

    async def run(event: Any, call_next: Any) -> None:
        order.append(name)
        await call_next(event)

    return run


def test_chains_follow_their_stages_whatever_the_registration_order() -> None:
    hooks = Hooks()
    order: list[str] = []

    class Late:
        @hookimpl
        def oc_inbound_rules(self) -> list[tuple[str, Any]]:
            return [("rate_limit", _rule(order, "rate_limit")), ("trace", _rule(order, "trace"))]

    class Early:
        @hookimpl
        def oc_inbound_rules(self) -> list[tuple[str, Any]]:
            return [("access", _rule(order, "access"))]

    async def accept(_event: Any) -> None:
        order.append("accepted")

    hooks.register(Late())
    hooks.register(Early())
    handler = compose(hooks.staged(hooks.call.oc_inbound_rules(), INBOUND_STAGES), accept)
    asyncio.run(handler(object()))
    assert order == ["trace", "access", "rate_limit", "accepted"]

    class Odd:
        @hookimpl
        def oc_inbound_rules(self) -> list[tuple[str, Any]]:
            return [("sometime", _rule(order, "odd"))]

    hooks.register(Odd())
    with pytest.raises(ValueError, match="unknown stage 'sometime'"):
        hooks.staged(hooks.call.oc_inbound_rules(), INBOUND_STAGES)


async def test_inbound_rules_run_in_stage_order(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    order: list[str] = []

    class Both:
        @hookimpl
        def oc_inbound_rules(self) -> list[tuple[str, Any]]:
            return [
                ("observe", _rule(order, "observe")),
                ("trace", _rule(order, "trace")),
                ("access", _rule(order, "a")),
            ]

    fake_ollama.reply("ok")
    async with Harness(make_settings()) as h:
        h.app.hooks.register(Both())
        h.app.runtime.build()
        assert await h.say("hi") == "ok"
    assert order == ["trace", "a", "observe"]


def test_a_hook_implementation_with_a_wrong_name_is_refused() -> None:
    class Typo:
        @hookimpl
        def oc_choose_modle(self, address: Any) -> str:
            return "x"

    with pytest.raises(Exception, match="oc_choose_modle"):
        Hooks().register(Typo())


async def test_an_observer_that_raises_leaves_no_coroutine_unawaited() -> None:
    """The error goes on; the observers after it are closed, not left for the garbage
    collector to warn about (a warning the suite turns into an error)."""
    hooks = Hooks()
    ran: list[str] = []

    class Loud:
        @hookimpl(tryfirst=True)
        async def oc_reaction(self, reaction: Any, reply_id: int | None) -> None:
            raise RuntimeError("observer failed")

    class Quiet:
        @hookimpl(trylast=True)
        async def oc_reaction(self, reaction: Any, reply_id: int | None) -> None:
            ran.append("quiet")

    hooks.register(Loud())
    hooks.register(Quiet())
    results = hooks.call.oc_reaction(reaction=None, reply_id=None)
    with pytest.raises(RuntimeError, match="observer failed"):
        await hooks.notify(results)
    assert ran == []
    assert all(r.cr_frame is None for r in results)  # closed (or finished), none pending

    class Answer:
        @hookimpl(tryfirst=True)
        async def oc_person_of(self, user: Any) -> str:
            return "p-1"

    class Never:
        @hookimpl(trylast=True)
        async def oc_person_of(self, user: Any) -> str:
            ran.append("never")
            return "p-2"

    hooks.register(Answer())
    hooks.register(Never())
    asked = hooks.call.oc_person_of(user=None)
    assert await hooks.first(asked) == "p-1"
    assert ran == [] and all(r.cr_frame is None for r in asked)

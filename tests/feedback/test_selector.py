"""Which variant a turn gets: stickiness, reset, scopes, exploration, Thompson sampling."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.selector import Pool
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness


@pytest.fixture
async def sticky(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> AsyncIterator[Harness]:
    h = Harness(fb_settings(OC_TUNING_STICKY_TURNS=3, OC_TUNING_EXPLORATION=0.5))
    h.app.extras["feedback_rng"] = random.Random(3)
    async with h:
        yield h


async def served(h: Harness, user: str = "alice", chat: str | None = None) -> int:
    await h.say("hi", user=user, chat=chat)
    reply = await h.app.store.reply_for_message("test", chat or user, h.last_message_id)
    return int(reply.variant_id)


async def test_a_conversation_keeps_its_variant_for_the_sticky_turns(sticky: Harness) -> None:
    svc: FeedbackService = sticky.app.extras["feedback"]
    await svc.tuner.add("Be brief.", actor="test:root")
    await svc.tuner.add("Be verbose.", actor="test:root")
    runs = [await served(sticky) for _ in range(12)]
    blocks = [runs[i : i + 3] for i in range(0, 12, 3)]
    assert all(len(set(b)) == 1 for b in blocks), runs  # constant within each block of 3 turns
    assert len(set(runs)) > 1, runs  # and redrawn between blocks


async def test_reset_draws_again_and_a_retired_variant_is_never_served(sticky: Harness) -> None:
    svc: FeedbackService = sticky.app.extras["feedback"]
    cand = int((await svc.tuner.add("Be brief.", actor="test:root")).id)
    first = await served(sticky)
    assignment = await svc.repo.assignment("test:alice")
    assert assignment.variant_id == first and assignment.turns == 1
    await sticky.command("reset")
    await served(sticky)
    assert (await svc.repo.assignment("test:alice")).epoch == 1  # a new draw for the new epoch
    await svc.tuner.retire(cand, actor="test:root")
    assert {await served(sticky) for _ in range(6)} == {1}


async def test_chat_and_platform_scopes_take_precedence(sticky: Harness) -> None:
    svc: FeedbackService = sticky.app.extras["feedback"]
    plat = await svc.tuner.add(
        "Platform style.", actor="test:root", scope="platform", scope_key="test"
    )
    await svc.tuner.promote(int(plat.id), actor="test:root")
    chat = await svc.tuner.add(
        "Bob's style.", actor="test:root", scope="chat", scope_key="test:bob"
    )
    await svc.tuner.pin(int(chat.id), actor="test:root")
    assert await served(sticky, "bob") == chat.id
    assert await served(sticky, "carol") == plat.id
    [global_default] = [r for r in await svc.repo.variants() if r.scope == "global"]
    assert global_default.status == "active"  # a platform promotion leaves global alone


async def test_tuning_off_serves_the_incumbent_only(
    fb_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(fb_settings(OC_TUNING="false")) as h:
        svc: FeedbackService = h.app.extras["feedback"]
        await svc.tuner.add("Be brief.", actor="test:root")
        assert {await served(h, f"u{i}") for i in range(8)} == {1}


def _row(vid: int, status: str) -> SimpleNamespace:
    return SimpleNamespace(id=vid, status=status, template=f"t{vid}", scope="global", scope_key="")


async def test_new_candidates_get_the_exploration_share_then_compete(
    service: FeedbackService,
) -> None:
    inc, new = _row(1, "active"), _row(2, "candidate")
    pool = Pool("global", "", inc, [new])
    sel = service.selector
    sel.rng = random.Random(11)
    picks = [int((await sel.draw(pool)).id) for _ in range(2000)]
    share = picks.count(2) / len(picks)
    assert 0.21 < share < 0.29  # OC_TUNING_EXPLORATION defaults to 0.25
    for n in range(20):  # the candidate earns 20 positive ratings: now Thompson sampling decides
        await service.repo.set_vote(
            SimpleNamespace(id=1000 + n, variant_id=2, model="", conversation="", failure=None),
            f"u{n}",
            1,
            "👍",
        )
        await service.repo.set_vote(
            SimpleNamespace(id=2000 + n, variant_id=1, model="", conversation="", failure=None),
            f"u{n}",
            -1 if n % 2 else 1,
            "👍",
        )
    picks = [int((await sel.draw(pool)).id) for _ in range(500)]
    assert picks.count(2) / len(picks) > 0.95


async def test_new_candidates_together_get_at_most_half_the_draws(
    service: FeedbackService,
) -> None:
    inc, a, b = _row(1, "active"), _row(2, "candidate"), _row(3, "candidate")
    sel = service.selector
    sel.rng = random.Random(5)
    picks = [int((await sel.draw(Pool("global", "", inc, [a, b]))).id) for _ in range(3000)]
    shares = [round(picks.count(v) / len(picks), 2) for v in (1, 2, 3)]
    assert 0.46 < shares[0] < 0.54 and all(0.21 < s < 0.29 for s in shares[1:]), shares


async def test_against_an_established_incumbent_new_candidates_get_half(
    service: FeedbackService,
) -> None:
    inc, new = _row(1, "active"), _row(2, "candidate")
    for n in range(40):  # twice OC_TUNING_MIN_RATINGS (20): the incumbent's rate is known
        await service.repo.set_vote(
            SimpleNamespace(id=3000 + n, variant_id=1, model="", conversation="", failure=None),
            f"u{n}",
            1,
            "👍",
        )
    sel = service.selector
    sel.rng = random.Random(3)
    picks = [int((await sel.draw(Pool("global", "", inc, [new]))).id) for _ in range(2000)]
    assert 0.46 < picks.count(2) / len(picks) < 0.54

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.repo import FeedbackRepo
from opencomputer.bot.feedback.tuner import Tuner, TuningError
from opencomputer.bot.storage import SqlStore

_ids = itertools.count(1)


@pytest.fixture
async def tuner(fb_settings: Callable[..., Settings]) -> AsyncIterator[Tuner]:
    settings = fb_settings(
        OC_TUNING_MIN_RATINGS=20,
        OC_TUNING_ROLLBACK_MIN_RATINGS=5,
        OC_TUNING_MARGIN=0.1,
        OC_TUNING_ROLLBACK_MARGIN=0.05,
    )
    store = SqlStore(settings.resolved_database_url)
    await store.start()
    repo = FeedbackRepo(store.engine)
    t = Tuner(settings, repo)
    await t.ensure_default()
    yield t
    await store.stop()


async def vote(t: Tuner, variant: int, up: int, down: int, *, failure: str | None = None) -> None:
    for score in [1] * up + [-1] * down:
        n = next(_ids)
        reply = SimpleNamespace(
            id=n, variant_id=variant, model="m", conversation="test:c", failure=failure
        )
        await t.repo.set_vote(reply, f"test:u{n}", score, "👍" if score > 0 else "👎")


async def status(t: Tuner, variant: int) -> str:
    row = await t.repo.variant(variant)
    assert row is not None
    return str(row.status)


async def test_promotion_needs_the_minimum_number_of_ratings(tuner: Tuner) -> None:
    cand = int((await tuner.add("Be brief.", actor="test:root")).id)
    await vote(tuner, 1, 8, 11)  # incumbent: 19 ratings, 42%
    await vote(tuner, cand, 20, 0)
    assert await tuner.evaluate(cand) == []  # overwhelming, but 19 < 20 on the incumbent side
    await vote(tuner, 1, 0, 1)
    events = await tuner.evaluate(cand)
    assert [e.kind for e in events] == ["auto_promoted"]
    assert "P(better by 0.10)" in events[0].reason
    assert await status(tuner, cand) == "active"
    assert await status(tuner, 1) == "retired"
    row = await tuner.repo.variant(cand)
    assert row.replaced_id == 1 and row.promoted_at is not None


async def test_promotion_needs_posterior_probability_above_the_bar(tuner: Tuner) -> None:
    cand = int((await tuner.add("Be brief.", actor="test:root")).id)
    await vote(tuner, 1, 12, 8)  # 60%
    await vote(tuner, cand, 15, 5)  # 75%: better, but not 0.95 sure it is better by 0.1
    assert await tuner.evaluate(cand) == []
    await vote(tuner, cand, 60, 0)
    assert [e.kind for e in await tuner.evaluate(cand)] == ["auto_promoted"]


async def test_equal_variants_are_neither_promoted_nor_rolled_back(tuner: Tuner) -> None:
    cand = int((await tuner.add("Be friendly.", actor="test:root")).id)
    await vote(tuner, 1, 60, 40)
    await vote(tuner, cand, 62, 38)
    assert await tuner.evaluate(cand) == []
    assert await status(tuner, cand) == "candidate"


async def test_a_worse_candidate_is_rolled_back_after_few_ratings(tuner: Tuner) -> None:
    cand = int((await tuner.add("Ramble on.", actor="test:root")).id)
    await vote(tuner, 1, 4, 1)
    await vote(tuner, cand, 0, 4)
    assert await tuner.evaluate(cand) == []  # 4 < rollback minimum of 5
    await vote(tuner, cand, 0, 1)
    events = await tuner.evaluate(cand)
    assert [e.kind for e in events] == ["auto_rolled_back"]
    assert await status(tuner, cand) == "retired"
    assert await status(tuner, 1) == "active"


async def test_ratings_of_failed_replies_are_not_blamed_on_the_prompt(tuner: Tuner) -> None:
    cand = int((await tuner.add("Ramble on.", actor="test:root")).id)
    await vote(tuner, 1, 5, 0)
    await vote(tuner, cand, 0, 30, failure="model: 500 simulated crash")
    assert await tuner.evaluate(cand) == []
    posts = await tuner.repo.posteriors([cand])
    assert posts[cand].n == 0
    stats = {s.variant.id: s for s in await tuner.repo.stats()}
    assert (stats[cand].down, stats[cand].excluded) == (0, 30)


async def test_a_promoted_variant_that_then_does_worse_is_rolled_back(tuner: Tuner) -> None:
    cand = int((await tuner.add("Be brief.", actor="test:root")).id)
    await vote(tuner, 1, 14, 6)  # the old default: 70%
    await tuner.promote(cand, actor="test:root")
    await vote(tuner, cand, 2, 18)  # since its promotion: 10%
    events = await tuner.evaluate(cand)
    assert [e.kind for e in events] == ["auto_rolled_back"]
    assert await status(tuner, cand) == "retired"
    assert await status(tuner, 1) == "active"


async def test_auto_tuning_can_be_turned_off(fb_settings: Callable[..., Settings]) -> None:
    settings = fb_settings(OC_TUNING_AUTO="false")
    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        t = Tuner(settings, FeedbackRepo(store.engine))
        await t.ensure_default()
        cand = int((await t.add("Ramble.", actor="x")).id)
        await vote(t, 1, 10, 0)
        await vote(t, cand, 0, 10)
        assert await t.evaluate(cand) == []
    finally:
        await store.stop()


async def test_moves_are_recorded_and_undo_reverses_them(tuner: Tuner) -> None:
    seen: list[Any] = []

    async def hook(event: Any) -> None:
        seen.append(event)

    tuner.audit_hooks.append(hook)
    cand = int((await tuner.add("Be brief.", actor="test:root")).id)
    await tuner.promote(cand, actor="test:root")
    assert (await status(tuner, cand), await status(tuner, 1)) == ("active", "retired")
    undo = await tuner.undo(actor="test:root")
    assert (await status(tuner, cand), await status(tuner, 1)) == ("candidate", "active")
    assert undo.kind == "undone" and "promoted" in undo.reason
    assert [e.kind for e in seen] == ["added", "promoted", "undone"]
    assert seen[1].actor == "test:root"
    with pytest.raises(TuningError, match="no change to undo"):
        await tuner.undo(actor="test:root")  # the promotion was undone; 'added' changes no status


async def test_global_default_cannot_be_retired_only_replaced(tuner: Tuner) -> None:
    with pytest.raises(TuningError, match="global default"):
        await tuner.retire(1, actor="test:root")
    with pytest.raises(TuningError, match="no prompt variant #99"):
        await tuner.promote(99, actor="test:root")


async def test_pin_and_unpin(tuner: Tuner) -> None:
    cand = int((await tuner.add("Be brief.", actor="test:root")).id)
    await tuner.pin(cand, actor="test:root")
    assert await status(tuner, cand) == "pinned"
    await vote(tuner, 1, 30, 0)
    await vote(tuner, cand, 0, 30)
    assert await tuner.evaluate(cand) == []  # a pinned scope is the admin's call
    await tuner.unpin(cand, actor="test:root")
    assert await status(tuner, cand) == "candidate"


async def test_changed_system_prompt_becomes_a_new_version(
    fb_settings: Callable[..., Settings],
) -> None:
    first = fb_settings(OC_SYSTEM_PROMPT="Version one.")
    store = SqlStore(first.resolved_database_url)
    await store.start()
    try:
        repo = FeedbackRepo(store.engine)
        await Tuner(first, repo).ensure_default()
        await Tuner(first, repo).ensure_default()  # unchanged: nothing new
        second = fb_settings(OC_SYSTEM_PROMPT="Version two.")
        await Tuner(second, repo).ensure_default()
        rows = await repo.variants()
        assert [(r.name, r.version, r.status, r.template) for r in rows] == [
            ("default", 1, "retired", "Version one."),
            ("default", 2, "active", "Version two."),
        ]
    finally:
        await store.stop()


@pytest.mark.postgres
async def test_votes_promotion_and_forget_on_postgresql(
    fb_settings: Callable[..., Settings], postgres_url: str
) -> None:
    settings = fb_settings(OC_DATABASE_URL=postgres_url)
    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        repo = FeedbackRepo(store.engine)
        t = Tuner(settings, repo)
        await t.ensure_default()
        cand = int((await t.add("Be brief.", actor="test:root")).id)
        await vote(t, 1, 5, 15)
        await vote(t, cand, 20, 0)
        await vote(t, cand, 0, 3, failure="model: down")
        assert [e.kind for e in await t.evaluate(cand)] == ["auto_promoted"]
        stats = {s.variant.id: s for s in await repo.stats()}
        assert (stats[cand].up, stats[cand].down, stats[cand].excluded) == (20, 0, 3)
        assert (await t.undo(actor="test:root")).kind == "undone"
        votes, notes = await repo.forget(["nobody"])
        assert (votes, notes) == (43, 0)  # no reply rows exist here: every vote is an orphan
    finally:
        await store.stop()


async def test_rolling_back_a_scoped_variant_leaves_other_scopes_alone(tuner: Tuner) -> None:
    plat = int((await tuner.add("Slack style.", actor="x", scope="platform", scope_key="slack")).id)
    await tuner.promote(plat, actor="x")
    assert await status(tuner, 1) == "active"  # the global default is another scope's
    event = await tuner.rollback(plat, actor="x")
    assert json.loads(event.changes) == [[plat, "active", "retired"]]
    assert await status(tuner, 1) == "active"
    with pytest.raises(TuningError, match="nothing to go back to"):
        await tuner.rollback(1, actor="x")  # the seeded global default replaced nothing

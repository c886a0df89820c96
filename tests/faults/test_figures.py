"""The crash suite's measuring, on hand-made platform states: each failure it must see."""

from __future__ import annotations

from tests.faults.crash_model import answer_for, respond
from tests.faults.crash_platform import BotMessage
from tests.faults.figures import measure

SENT = {0: ["c00m000", "c00m001", "c00m002"]}


def bot(*texts: str) -> list[BotMessage]:
    """Bot messages in one chat, each showing its history (the last text is final)."""
    return [BotMessage(0, 100 + i, t.split("|")) for i, t in enumerate(texts)]


def full(tag: str) -> str:
    return answer_for(tag)


def test_a_clean_run_counts_nothing() -> None:
    fig = measure(SENT, {0: bot(*(f"…|{full(t)[:20]}|{full(t)}" for t in SENT[0]))})
    assert (fig.failures, fig.placeholders, fig.other, fig.messages) == (0, 0, 0, 3)


def test_a_message_without_a_complete_answer_is_lost() -> None:
    fig = measure(SENT, {0: bot(full("c00m000"), full("c00m002"))})
    assert (fig.lost, fig.twice, fig.out_of_order, fig.partial) == (1, 0, 0, 0)
    assert fig.examples["lost"] == ["chat 0 c00m001"]


def test_a_half_written_copy_beside_the_full_answer_is_partial_and_twice() -> None:
    fig = measure(SENT, {0: bot(full("c00m000")[:18], *(full(t) for t in SENT[0]))})
    assert (fig.lost, fig.twice, fig.complete_twice, fig.partial) == (0, 1, 0, 1)


def test_two_complete_copies_are_twice() -> None:
    fig = measure(SENT, {0: bot(*(full(t) for t in SENT[0]), full("c00m002"))})
    assert (fig.twice, fig.complete_twice, fig.partial, fig.out_of_order) == (1, 1, 0, 0)


def test_answers_in_another_order_are_out_of_order() -> None:
    fig = measure(SENT, {0: bot(full("c00m001"), full("c00m000"), full("c00m002"))})
    assert (fig.out_of_order, fig.lost, fig.twice) == (1, 0, 0)


def test_a_stray_placeholder_is_counted_but_is_no_failure() -> None:
    fig = measure(SENT, {0: bot("…", *(full(t) for t in SENT[0]), "...")})
    assert (fig.failures, fig.placeholders) == (0, 2)


def test_a_cut_answer_is_partial_even_before_its_tag_is_complete() -> None:
    fig = measure(SENT, {0: bot("answer c00", *(full(t) for t in SENT[0]))})
    assert (fig.partial, fig.placeholders, fig.failures) == (1, 0, 1)


def test_an_apology_or_a_merged_answer_is_other_and_leaves_the_message_lost() -> None:
    merged = f"{full('c00m001')} {full('c00m002')}"
    fig = measure(SENT, {0: bot(full("c00m000"), "Sorry, something went wrong.", merged)})
    assert (fig.other, fig.lost) == (2, 2)


def test_a_message_edited_from_one_answer_to_another_is_rewritten() -> None:
    fig = measure(SENT, {0: bot(f"{full('c00m000')}|{full('c00m001')}", full("c00m002"))})
    assert (fig.rewritten, fig.lost) == (1, 1)


def test_the_model_streams_the_answer_to_the_newest_message_in_0_2_to_0_5_s() -> None:
    older = {"role": "user", "content": "c00m000"}
    reply = respond({"messages": [older, {"role": "user", "content": "c03m007"}]})
    assert reply.content == answer_for("c03m007")
    assert 0.2 <= reply.pace * (reply.chunks - 1) <= 0.5
    assert respond({"messages": [{"role": "user", "content": "summarise"}]}).content == "noted"

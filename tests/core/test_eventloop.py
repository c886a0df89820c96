"""The CLI's loop and collector set-up (bot/eventloop.py): uvloop unless opted out, CPython's
collector thresholds raised unless opted out, and a piped chat answered on uvloop.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from opencomputer.bot import eventloop
from opencomputer.bot.testing import FakeOllama

from .test_cli import _run


@pytest.fixture
def thresholds() -> Iterator[None]:
    """Whatever a test sets, the rest of the suite keeps this process's thresholds."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch, thresholds: None) -> None:
    monkeypatch.delenv("OC_EVENT_LOOP", raising=False)
    assert eventloop.loop_kind() == "uvloop"
    assert eventloop.run(_loop_type()) is uvloop.Loop


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_standard_loop_when_asked(
    monkeypatch: pytest.MonkeyPatch, thresholds: None, value: str
) -> None:
    monkeypatch.setenv("OC_EVENT_LOOP", value)
    assert eventloop.loop_kind() == "asyncio"
    loop_type = eventloop.run(_loop_type())
    assert loop_type is not uvloop.Loop
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_run_returns_and_raises_like_asyncio_run(thresholds: None) -> None:
    async def fails() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        eventloop.run(fails())
    assert eventloop.run(asyncio.sleep(0, "done")) == "done"


def test_collector_thresholds_raised_unless_default(
    monkeypatch: pytest.MonkeyPatch, thresholds: None
) -> None:
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("OC_GC", "default")
    eventloop.run(asyncio.sleep(0))
    eventloop.tune_collector()
    assert gc.get_threshold() == (700, 10, 10)
    monkeypatch.delenv("OC_GC")
    eventloop.run(asyncio.sleep(0))
    assert gc.get_threshold() == eventloop.GC_THRESHOLDS


async def test_piped_chat_runs_on_uvloop(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    """The real command, start to answer, on the loop it picks (and on the standard one)."""
    env = {"OLLAMA_HOST": fake_ollama.url, "OC_DATA_DIR": str(tmp_path / "d")}
    code, out, err = await _run(["chat"], env, "hello\n")
    assert code == 0, err
    assert out.startswith("echo: hello")
    code, out, err = await _run(["chat"], {**env, "OC_EVENT_LOOP": "asyncio"}, "again\n")
    assert code == 0, err
    assert out.startswith("echo: again")

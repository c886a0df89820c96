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
from opencomputer.bot.config import ConfigError, load_settings
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


@pytest.mark.parametrize("value", ["auto", "uvloop"])
def test_uvloop_by_default(thresholds: None, value: str) -> None:
    assert eventloop.loop_kind(value) == "uvloop"
    assert eventloop.run(_loop_type(), loop=value) is uvloop.Loop
    assert eventloop.run(_loop_type()) is uvloop.Loop


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_standard_loop_when_asked(thresholds: None, value: str) -> None:
    assert eventloop.loop_kind(value) == "asyncio"
    loop_type = eventloop.run(_loop_type(), loop=value)
    assert loop_type is not uvloop.Loop
    assert issubclass(loop_type, asyncio.BaseEventLoop)


def test_settings_carry_both_choices_and_refuse_others(tmp_path: Path) -> None:
    settings = load_settings(OC_DATA_DIR=tmp_path)
    assert (settings.event_loop, settings.gc_mode) == ("auto", "default")
    settings = load_settings(OC_DATA_DIR=tmp_path, OC_EVENT_LOOP="asyncio", OC_GC="tuned")
    assert (settings.event_loop, settings.gc_mode) == ("asyncio", "tuned")
    with pytest.raises(ConfigError, match="OC_EVENT_LOOP"):
        load_settings(OC_DATA_DIR=tmp_path, OC_EVENT_LOOP="trio")


def test_run_returns_and_raises_like_asyncio_run(thresholds: None) -> None:
    async def fails() -> None:
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        eventloop.run(fails())
    assert eventloop.run(asyncio.sleep(0, "done")) == "done"


def test_collector_thresholds_raised_unless_default(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    eventloop.run(asyncio.sleep(0), collector="default")
    eventloop.tune_collector("default")
    assert gc.get_threshold() == (700, 10, 10)
    eventloop.run(asyncio.sleep(0), collector="tuned")
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

"""Fixtures for the Matrix tests: a real Synapse (session), users, a human client, the bot."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings, load_settings
from opencomputer.connectors.matrix import MatrixConnector
from tests.matrix.matrix_helpers import BotFactory, Human, Sink
from tests.matrix.synapse_server import Account, SynapseServer, SynapseUnavailable, ensure_installed

IN_CI = bool(os.environ.get("CI"))
_INSTALL: list[Path | SynapseUnavailable] = []


def pytest_configure(config: pytest.Config) -> None:
    """Install Synapse (first run only) while collecting, outside every test's time limit."""
    if _INSTALL:
        return
    try:
        _INSTALL.append(ensure_installed())
    except SynapseUnavailable as exc:
        _INSTALL.append(exc)


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One homeserver for the whole run; each test registers its own users."""
    try:
        python = _INSTALL[0] if _INSTALL else ensure_installed()
        if isinstance(python, SynapseUnavailable):
            raise python
        server = SynapseServer(python, tmp_path_factory.mktemp("synapse"))
        server.start()
    except SynapseUnavailable as exc:
        if IN_CI:
            pytest.fail(f"Synapse is required in CI but unavailable: {exc}")
        pytest.skip(f"no local Synapse homeserver (scripts/synapse.sh could not set one up): {exc}")
    yield server
    server.stop()


def _name(role: str) -> str:
    return f"{role}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bot_account(synapse: SynapseServer) -> Account:
    return synapse.register(_name("bot"))


@pytest.fixture
def human_account(synapse: SynapseServer) -> Account:
    return synapse.register(_name("alice"))


@pytest.fixture
async def human(synapse: SynapseServer, human_account: Account) -> AsyncIterator[Human]:
    person = Human(synapse.url, human_account)
    await person.sync(0)
    yield person
    await person.client.close()


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def make_bot(
    synapse: SynapseServer,
    bot_account: Account,
    human_account: Account,
    sink: Sink,
    tmp_path: Path,
) -> AsyncIterator[BotFactory]:
    """Build and start bot connectors (stopped at teardown); several may share a data dir."""
    started: list[MatrixConnector] = []

    async def make(emit: Any = None, start: bool = True, **overrides: Any) -> MatrixConnector:
        values: dict[str, Any] = {
            "MATRIX_HOMESERVER": synapse.url,
            "MATRIX_USER_ID": bot_account.user_id,
            "MATRIX_PASSWORD": bot_account.password,
            "OC_DATA_DIR": tmp_path / "data",
            "OC_ADMINS": f"matrix:{human_account.user_id}",
        }
        values.update(overrides)
        settings: Settings = load_settings(**values)
        bot = MatrixConnector(settings, emit or sink)
        bot.poll_timeout_ms = 2_000
        bot.backoff_base = 0.05
        bot.backoff_cap = 0.5
        started.append(bot)
        if start:
            await bot.start()
        return bot

    yield make
    for bot in started:
        await bot.stop()

"""An app with its HTTP server on a free port, and a scrape of its ``/metrics``.

Used by the observability tests (and any suite that wants to assert metrics)."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from opencomputer.bot.config import Settings
from opencomputer.bot.testing.harness import Harness, RecordingConnector

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class HttpHarness(Harness):
    """The harness with the real HTTP app (``/metrics``, ``/healthz``) bound to port 0."""

    async def start(self) -> None:
        def factory(_settings: Settings, runtime: Any) -> list[Any]:
            self.connector = RecordingConnector(runtime.emit, **self._options)
            return [self.connector]

        await self.app.start(factory, http=True)

    @property
    def base_url(self) -> str:
        assert self.app.http is not None
        return f"http://127.0.0.1:{self.app.http.port}"

    async def scrape(self) -> Samples:
        """Every sample ``/metrics`` serves now, keyed by (name, sorted labels)."""
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.base_url}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of one series, or None when it is not exported."""
    return samples.get((name, tuple(sorted(labels.items()))))

"""A Bot API base URL that answers with a proxy's HTML 502 page: one log line, no traceback.

python-telegram-bot logs the HTML page and a 20-line traceback on every retry; the real
`python -m bot run` must show one line for the whole streak.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from aiohttp import web

PAGE = (
    "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    "<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
)
PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")


async def test_html_502_is_one_line_per_streak(tmp_path: Path) -> None:
    hits = 0

    async def bad_gateway(_request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=502, text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env = {
        **clean,
        "OC_DATA_DIR": str(tmp_path / "data"),
        "OLLAMA_HOST": "http://127.0.0.1:9",
        "OC_HTTP_HOST": "127.0.0.1",
        "OC_HTTP_PORT": "0",
        "TELEGRAM_BOT_TOKEN": "1:x",
        "TELEGRAM_BASE_URL": f"http://127.0.0.1:{port}/bot",
        "OC_LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencomputer", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while hits < 4:  # the connector retried several times (backoff from 1 s)
            assert time.monotonic() < deadline, f"only {hits} requests"
            assert proc.returncode is None
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        _out, err_bytes = await asyncio.wait_for(proc.communicate(), 30)
        await runner.cleanup()
    err = err_bytes.decode()
    assert "Traceback" not in err, err[-3000:]
    page_lines = [line for line in err.splitlines() if line.strip().startswith("<")]
    assert page_lines == [], page_lines
    streak = [line for line in err.splitlines() if "telegram: cannot reach" in line]
    assert len(streak) == 1, streak
    assert "502" in streak[0]

"""Attack: secrets the app did not know were secret reach the log (issue 13, item 11).

Passwords in ``OC_DATABASE_URL`` / ``OC_REDIS_URL``, a plugin's secret and any URL with a
password are written by the app's own loggers, inside exception tracebacks and ``extra``
fields, and by SDK loggers at DEBUG (httpx logs every URL, a Telegram URL holds the token).
Lines are captured from the handler :func:`bot.logs.setup_logging` installs, as in production.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.logs import SDK_LOGGERS, setup_logging
from opencomputer.bot.plugins.discovery import discover
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox
from tests.plugins.conftest import make_plugin


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _plugin_secret(tmp_path: Path) -> str:
    """Load a plugin with a secret the way the server does; return the secret's value."""
    value = "plugin-" + secrets.token_hex(12)
    make_plugin(
        tmp_path / "plugins",
        "vault",
        "from opencomputer.bot.plugins.api import tool\n",
        permissions={"secrets": ["OC_VAULT_KEY"]},
        settings={"OC_VAULT_KEY": {"secret": True}},
    )
    found = discover([str(tmp_path / "plugins")], environ={"OC_VAULT_KEY": value}, packages=False)
    PluginHost(found, sandbox=Sandbox(mode="off"), data_root=tmp_path, limits=CallLimits())
    return value


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_url_passwords_and_plugin_secrets_are_masked_everywhere(
    make_settings: Callable[..., Settings], tmp_path: Path, log_stream: io.StringIO, fmt: str
) -> None:
    db_password = "db/" + secrets.token_urlsafe(12) + "@x"  # needs percent-encoding in a URL
    redis_password = secrets.token_urlsafe(16)
    settings = make_settings(
        OC_DATABASE_URL=f"postgresql://oc:{quote(db_password, safe='')}@db.internal:5432/oc",
        OC_REDIS_URL=f"redis://default:{redis_password}@cache.internal:6379/0",
    )
    setup_logging("DEBUG", settings.secret_values(), stream=log_stream, fmt=fmt)
    plugin_secret = _plugin_secret(tmp_path)  # registered by the loader, after set-up
    stranger = "Sw0rdfish-" + secrets.token_hex(6)  # a password nobody registered

    log = logging.getLogger("bot.tests.masking")
    log.info("database at %s", settings.database_url)
    log.info("redis at %s, password %s", settings.redis_url, redis_password)
    log.warning("raw db password %r", db_password, extra={"dsn": settings.database_url})
    log.info("proxy https://bob:%s@proxy.example:3128 failed", stranger)
    log.debug("plugin vault answered with key=%s", plugin_secret)
    try:
        raise ConnectionError(f"cannot reach {settings.redis_url} (key {plugin_secret})")
    except ConnectionError:
        log.exception("worker failed")
    logging.getLogger("telegram.ext").error("url: https://u:%s@h/bot", plugin_secret)

    text = log_stream.getvalue()
    assert "database at postgresql://oc:***@db.internal:5432/oc" in text
    assert "cannot reach redis://default:***@cache.internal:6379/0 (key ***)" in text
    assert "Traceback" in text and "worker failed" in text  # the traceback is there, masked
    assert "https://bob:***@proxy.example:3128" in text
    for secret in (db_password, quote(db_password, safe=""), redis_password, plugin_secret):
        assert secret not in text
    assert stranger not in text
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert any(line.get("dsn") == "postgresql://oc:***@db.internal:5432/oc" for line in lines)


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sdk_loggers_stay_quiet_at_debug_without_the_opt_in(
    log_stream: io.StringIO, local_server: str
) -> None:
    token = f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(24)}"  # not registered
    setup_logging("DEBUG", stream=log_stream)
    httpx.get(f"{local_server}/bot{token}/getMe")  # the real client, its real loggers
    for name in ("telegram.ext.ExtBot", "slack_sdk.web.base_client", "nio.client", "openai"):
        logging.getLogger(name).debug("request headers: Authorization: Bearer %s", token)
    logging.getLogger("bot.tests").debug("our own DEBUG line")

    text = log_stream.getvalue()
    assert "our own DEBUG line" in text  # root DEBUG works for our code
    assert token not in text and "getMe" not in text and "Authorization" not in text
    for name in SDK_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name


def test_sdk_debug_needs_both_debug_and_the_opt_in(
    make_settings: Callable[..., Settings],
    log_stream: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server's own set-up (``bot.cli``): OC_LOG_LEVEL=DEBUG and OC_LOG_SDK_DEBUG=1."""
    from opencomputer.bot.cli import _logging

    cases = (("DEBUG", "0", False), ("INFO", "1", False), ("DEBUG", "1", True))
    for level, opt_in, expected in cases:
        _logging(make_settings(OC_LOG_LEVEL=level, OC_LOG_SDK_DEBUG=opt_in))
        logging.getLogger("telegram.ext").debug("SDK line %s/%s", level, opt_in)
        shown = f"SDK line {level}/{opt_in}" in capsys.readouterr().err
        assert shown is expected, (level, opt_in)
        for name in ("httpx", "telegram", "slack_bolt", "sqlalchemy.engine", "discord"):
            assert logging.getLogger(name).isEnabledFor(logging.DEBUG) is expected, name

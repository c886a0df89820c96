"""What `opencomputer chat` never imports: the regression guard of the cold start (issue 20).

A real ``chat`` process answers one message (start, a whole turn through the graph, stop)
against the fake Ollama and then lists the modules it loaded. Platform SDKs, the PostgreSQL
and Redis clients, media decoders and LangGraph's remote-server client must not be among
them; ``langsmith.types`` and ``langgraph_sdk`` are there only as the deferred packages of
``graphs/deferred.py`` (their ``__init__`` never ran). Nothing here is timed:
``bench/cold_start.py`` measures.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path

from opencomputer.bot.testing import FakeOllama
from opencomputer.graphs.deferred import DEFERRED

NEVER = (
    # messengers other than the terminal
    "telegram",
    "discord",
    "slack_bolt",
    "slack_sdk",
    "nio",
    # scale-out storage and queues
    "asyncpg",
    "psycopg",
    "redis",
    "langgraph.checkpoint.postgres",
    # memory vectors, loaded with the first memory handled
    "numpy",
    # Rich draws on a terminal only (this chat is piped)
    "rich",
    "markdown_it",
    # media, loaded with the first attachment
    "av",
    "PIL",
    "pypdf",
    "docx",
    # LangGraph's client for its hosted server, and what it drags in
    "langgraph_sdk.client",
    "httpx",
    "websockets",
    # LangSmith's ~150 generated API models
    "langsmith.types.run",
)

_PROBE = """
import json, sys
from opencomputer.bot.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
deferred = {
    name: type(sys.modules[name]).__name__
    for name in ("langgraph_sdk", "langsmith.types")
    if name in sys.modules
}
print("MODULES " + json.dumps({"code": code, "loaded": sorted(sys.modules), "deferred": deferred}))
"""


async def test_chat_answers_without_loading_what_it_does_not_use(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "OLLAMA_", "TELEGRAM_"))}
    fake_ollama.reply("Hello from the fake model.")
    env.update(OLLAMA_HOST=fake_ollama.url, OC_DATA_DIR=str(tmp_path / "data"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROBE,
        "chat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(b"hello\n"), timeout=60)
    lines = out.decode().splitlines()
    assert lines and lines[-1].startswith("MODULES "), err.decode()[-2000:]
    report = json.loads(lines[-1].removeprefix("MODULES "))
    assert report["code"] == 0, err.decode()[-2000:]
    assert lines[0] == "Hello from the fake model."  # the turn ran
    loaded = set(report["loaded"])
    present = sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in NEVER))
    assert present == []
    # the graph did import the two, but only as deferred packages
    assert report["deferred"] == {
        "langgraph_sdk": "_DeferredPackage",
        "langsmith.types": "_DeferredPackage",
    }


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (the deferral is per process); its stdout."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_a_deferred_package_runs_its_init_on_first_use() -> None:
    out = _run(
        "import sys, opencomputer.graphs, langgraph.runtime\n"
        "sdk = sys.modules['langgraph_sdk']\n"
        "before = type(sdk).__name__\n"
        "from langgraph_sdk import get_client\n"
        "import langgraph_sdk.client as c\n"
        "import langsmith.types as t\n"
        "print(before, type(sdk).__name__, get_client is c.get_client, sdk.__version__ != '',"
        " t.RunSelectField is sys.modules['langsmith.types.run_select_field'].RunSelectField)"
    )
    assert out == "_DeferredPackage module True True True"


def test_off_switch_imports_eagerly() -> None:
    code = (
        "import os, sys; os.environ['OC_EAGER_IMPORTS'] = '1'\n"
        "import opencomputer.graphs, langgraph.runtime\n"
        "print(type(sys.modules['langgraph_sdk']).__name__, 'langgraph_sdk.client' in sys.modules)"
    )
    assert _run(code) == "module True"


def test_deferred_inits_only_re_export() -> None:
    """Deferring an ``__init__`` is safe only while it has no effect but names: an upgrade of
    LangGraph's SDK or LangSmith that adds code there must be looked at again."""
    for name in DEFERRED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text())
        kinds = set()
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            if isinstance(node, ast.Assign):
                targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
                assert targets <= {"__version__", "__all__"}, (name, targets)
            kinds.add(type(node).__name__)
        assert kinds <= {"Import", "ImportFrom", "Assign"}, (name, kinds)

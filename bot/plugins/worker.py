"""The process a plugin call runs in: ``python -m bot.plugins.worker`` inside bubblewrap.

It reads one JSON request on stdin, lowers its own resource limits (CPU, memory, process
count), starts the bridge to its egress proxy when it has network grants (``HTTP_PROXY`` and
friends then point at it), loads the seccomp process filter (kernel-enforced: no ``fork`` or
``execve`` without the ``process`` permission), installs the audit-hook guard (a second layer
that gives clear errors), and only then imports the plugin. The result goes back as one JSON
object on the original stdout; the plugin's own prints go to stderr so they cannot corrupt it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import json
import logging
import os
import resource
import sys
import types
from pathlib import Path
from typing import Any

from opencomputer.bot.plugins.api import HttpResponse, PluginHttp, chat_kind_of

__all__ = ["ProxiedHttp", "call_handler", "confine", "dispatch", "import_plugin", "main"]


def _limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(which, (cap, cap))


def apply_limits(limits: dict[str, Any]) -> None:
    """CPU seconds and address space, hard limits too, so plugin code cannot raise them."""
    if limits.get("cpu_seconds"):
        soft = int(limits["cpu_seconds"])
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        cap = soft + 1 if hard == resource.RLIM_INFINITY else min(soft + 1, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, cap), cap))
    if limits.get("memory_mb"):
        _limit(resource.RLIMIT_AS, int(limits["memory_mb"]) * 1024 * 1024)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_FSIZE, 256 * 1024 * 1024)


def confine(request: dict[str, Any]) -> tuple[str, int] | None:
    """Process limit, egress bridge and seccomp filter; return the proxy's address if any.

    Raises :class:`~bot.plugins.seccomp.SeccompUnavailable` when the filter cannot be loaded:
    plugin code must then not run.
    """
    from opencomputer.bot.plugins.seccomp import install_process_filter, limit_processes

    processes = int((request.get("limits") or {}).get("processes") or 0)
    if processes:
        limit_processes(processes)
    proxy = None
    if request.get("egress_socket"):
        from opencomputer.bot.plugins.bridge import start_bridge

        port = start_bridge(str(request["egress_socket"]))
        url = f"http://127.0.0.1:{port}"
        # MQTT_PROXY: paho-mqtt's own variable (it tunnels through CONNECT with PySocks)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "MQTT_PROXY"):
            os.environ[name] = os.environ[name.lower()] = url
        for name in ("NO_PROXY", "no_proxy"):
            os.environ.pop(name, None)
        proxy = ("127.0.0.1", port)
    if not request.get("process"):
        install_process_filter()
    return proxy


def import_plugin(request: dict[str, Any]) -> types.ModuleType:
    """Import the plugin's module: as its own package, or under a private package name."""
    package = request.get("package")
    if not package:
        folder = Path(request["path"])
        package = f"oc_plugin_{request['plugin'].replace('-', '_')}"
        if package not in sys.modules:
            init = folder / "__init__.py"
            if init.is_file():
                spec = importlib.util.spec_from_file_location(
                    package, init, submodule_search_locations=[str(folder)]
                )
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[package] = module
                spec.loader.exec_module(module)
            else:
                module = types.ModuleType(package)
                module.__path__ = [str(folder)]
                sys.modules[package] = module
    return importlib.import_module(f"{package}.{request['module']}")


def find_handler(module: types.ModuleType, kind: str, target: str) -> Any:
    """Find the function behind a tool, command, hook or job name."""
    for value in vars(module).values():
        if kind == "tool" and getattr(getattr(value, "__oc_tool__", None), "name", None) == target:
            return value
        if kind == "command" and getattr(value, "__oc_command__", None) == target:
            return value
        if kind in ("hook", "job") and getattr(value, "__name__", None) == target:
            return value
    raise LookupError(f"{kind} {target!r} is not defined in {module.__name__}")


class ProxiedHttp(PluginHttp):
    """``ctx.http`` in a sandbox with network grants: every request goes through the proxy."""

    def __init__(self, hosts: list[str], proxy: str) -> None:
        super().__init__(hosts)
        self.proxy = proxy

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        """Send a request through the egress proxy (see :meth:`PluginHttp.request`)."""
        kwargs.setdefault("proxy", self.proxy)
        return await super().request(method, url, **kwargs)


def make_context(request: dict[str, Any]) -> Any:
    """Build the :class:`~bot.plugins.api.PluginContext` a handler gets."""
    from opencomputer.bot.events import Address, User
    from opencomputer.bot.plugins.api import KeyValueStore, PluginContext

    data_dir = Path(request["data_dir"])
    user = request.get("user")
    address = request.get("address")
    hosts = list(request.get("network") or [])
    proxy = os.environ.get("HTTP_PROXY") if request.get("egress_socket") else None
    return PluginContext(
        plugin=request["plugin"],
        settings=dict(request.get("settings") or {}),
        data_dir=data_dir,
        store=KeyValueStore(data_dir / "kv.sqlite3"),
        http=ProxiedHttp(hosts, proxy) if proxy else PluginHttp(hosts),
        log=logging.getLogger(f"plugin.{request['plugin']}"),
        user=User(**user) if user else None,
        address=Address.parse(address) if address else None,
        chat_kind=chat_kind_of(request.get("chat_kind")),
    )


async def call_handler(fn: Any, request: dict[str, Any], ctx: Any) -> Any:
    """Call ``fn`` the way its kind expects, passing ``ctx`` when it takes one."""
    kind = request["kind"]
    wants_ctx = "ctx" in inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"ctx": ctx} if wants_ctx else {}
    args: tuple[Any, ...] = ()
    if kind == "tool":
        kwargs.update(request.get("arguments") or {})
    elif kind == "command":
        args = (request.get("args", ""),)
    elif kind == "hook":
        args = (request.get("event") or {},)
    if not inspect.iscoroutinefunction(fn):  # blocking code must not stall an event loop
        return await asyncio.to_thread(fn, *args, **kwargs)
    return await fn(*args, **kwargs)


async def dispatch(request: dict[str, Any]) -> dict[str, Any]:
    """Import the plugin, call the handler, and describe the outcome as JSON-able data."""
    from opencomputer.bot.outfiles import OutFile
    from opencomputer.bot.tools import ToolError

    log = logging.getLogger(f"plugin.{request['plugin']}")
    try:
        module = import_plugin(request)
    except BaseException as exc:  # any import failure disables the plugin, never the server
        log.warning("import failed", exc_info=True)
        return {"ok": False, "import_error": True, "error": f"{type(exc).__name__}: {exc}"}
    if request["kind"] == "check":  # `opencomputer doctor`: does the code import?
        return {"ok": True, "result": "imports", "outbox": []}
    ctx = make_context(request)
    try:
        fn = find_handler(module, request["kind"], request["target"])
        result = await call_handler(fn, request, ctx)
        if isinstance(result, OutFile):  # bytes cross the pipe as JSON (base64)
            result = result.to_json()
        elif isinstance(result, list):  # text and files (a code interpreter's output)
            result = [item.to_json() if isinstance(item, OutFile) else item for item in result]
        return {"ok": True, "result": result, "outbox": ctx.outbox}
    except ToolError as exc:
        return {"ok": False, "error": str(exc), "outbox": ctx.outbox}
    except Exception as exc:
        log.warning("%s %s failed", request["kind"], request["target"], exc_info=True)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "outbox": ctx.outbox}
    finally:
        await ctx.aclose()


def main() -> None:
    """Entry point inside the sandbox."""
    result_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # plugin prints go to stderr
    request = json.loads(sys.stdin.buffer.read())
    apply_limits(request.get("limits") or {})
    from opencomputer.bot.plugins.guard import install_guard

    proxy = None
    if request.get("confine"):
        from opencomputer.bot.plugins.seccomp import SeccompUnavailable

        try:
            proxy = confine(request)
        except SeccompUnavailable as exc:
            refused = {"ok": False, "error": f"the sandbox could not be sealed: {exc}"}
            result_out.write(json.dumps(refused).encode())
            result_out.flush()
            return
    install_guard(
        list(request.get("network") or []),
        bool(request.get("process")),
        proxy=proxy,
        egress_socket=request.get("egress_socket"),
    )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    response = asyncio.run(dispatch(request))
    result_out.write(json.dumps(response, default=str).encode())
    result_out.flush()


if __name__ == "__main__":
    main()

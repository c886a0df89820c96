"""Run two third-party package ``__init__`` files only when something needs what they export.

LangGraph imports ``langgraph_sdk.auth.types`` (one small typing module, for ``BaseUser``) at
import time, and Python runs the parent package's ``__init__`` first: ``langgraph_sdk``'s
imports the whole remote-server client (httpx, websockets, rich, ``langchain_protocol``),
about a third of a second that a self-hosted bot never uses. Likewise LangSmith's tracer
types (which ``langchain_core`` needs as classes) import ``langsmith.types.run_select_field``,
and ``langsmith.types``' ``__init__`` re-exports ~150 generated API models (pydantic), about
half of LangSmith's import time. Both ``__init__`` files only re-export (checked by
``tests/core/test_cold_imports.py``).

:func:`install` adds a finder to ``sys.meta_path`` that gives those two packages a module whose
``__path__`` and spec are the real ones, so their submodules import as usual, and that runs the
real ``__init__`` the first time an attribute it does not have yet is asked for
(``langgraph_sdk.get_client``, ``from langsmith.types import Run``...): nothing of the libraries
is replaced or edited, only when their re-export files run changes. Upstream tracks the eager
imports as langchain-ai/langchain#40236; once LangGraph imports lazily this file can go.
``OC_EAGER_IMPORTS=1`` turns it off.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFERRED", "install"]

DEFERRED = frozenset({"langgraph_sdk", "langsmith.types"})
"""Packages whose ``__init__`` only re-exports names from their submodules."""


class _DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs on the first lookup of a name it lacks."""

    def __getattr__(self, name: str) -> Any:
        # Python calls this only for a name the module lacks (``__version__`` included);
        # while the import system is still filling in ``__path__`` and the rest, it is one.
        if "__deferred__" not in self.__dict__:
            raise AttributeError(name)
        _load(self)
        return types.ModuleType.__getattribute__(self, name)


_lock = threading.RLock()


def _load(module: types.ModuleType) -> None:
    """Run the real ``__init__`` in the module's own namespace (once)."""
    with _lock:
        if type(module) is not _DeferredPackage:
            return
        module.__class__ = types.ModuleType  # type: ignore[assignment]  # missing names raise again
        del module.__deferred__
        spec = module.__spec__
        assert spec is not None and spec.loader is not None
        loader: Any = spec.loader
        loader.real.exec_module(module)


class _DeferringLoader(importlib.abc.Loader):
    """Create the package module without running its ``__init__`` yet."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        """Everything else (resource readers, ``get_source``...) is the real loader's."""
        return getattr(self.real, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _DeferredPackage(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Not yet: only mark the module ready to run its ``__init__`` on first use."""
        module.__deferred__ = True  # type: ignore[attr-defined]


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Find the deferred packages with the other finders, then defer their ``__init__``."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in DEFERRED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or spec.submodule_search_locations is None:
            return spec  # not a plain package: import it as usual
        spec.loader = _DeferringLoader(spec.loader)
        return spec


_finder = _DeferringFinder()


def install() -> None:
    """Defer the packages in :data:`DEFERRED` (idempotent; a no-op once they are imported)."""
    if os.environ.get("OC_EAGER_IMPORTS") or _finder in sys.meta_path:
        return
    sys.meta_path.insert(0, _finder)

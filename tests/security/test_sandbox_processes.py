"""Attack: start programs without the ``process`` permission, fork-bomb, fill /tmp (item 5).

The audit hook only saw Python's APIs: ``_posixsubprocess.fork_exec`` and libc's ``system()``
went straight past it. The seccomp filter refuses the syscalls themselves; a per-sandbox
process limit bounds a plugin that may start programs; ``/tmp`` is sized to the memory limit.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.security.sandbox_kit import call, call_as_nobody, nobody_root, write_hostile


def _assert_nothing_started(answer: str, marker: Path) -> None:
    assert "PWNED-OUTPUT" not in answer  # no program's output anywhere in the answer
    report = json.loads(answer)  # and the worker was not replaced by a program (execve)
    assert "PermissionError" in report["fork_exec"]["error"]
    assert report["system"] != 0  # libc system(): no shell ran (127 << 8: could not start)
    assert report["fork"] == [-1, "Operation not permitted"]
    assert report["posix_spawn"] == [1, "Operation not permitted"]  # libc's, not os.posix_spawn
    assert report["execve"] == [-1, "Operation not permitted"]
    assert report["clone3"] == [-1, "Function not implemented"]
    assert not marker.exists()


async def test_no_program_starts_without_the_process_permission(tmp_path: Path) -> None:
    write_hostile(tmp_path / "plugins")
    marker = tmp_path / "data" / "plugins" / "hostile" / "marker"
    answer = await call(
        tmp_path / "plugins", tmp_path / "data", "hostile", "spawn", marker=str(marker)
    )
    _assert_nothing_started(answer, marker)


def test_no_program_starts_without_the_process_permission_as_nobody() -> None:
    with nobody_root() as root:
        write_hostile(root / "plugins")
        marker = root / "data" / "plugins" / "hostile" / "marker"
        answer = call_as_nobody(
            root / "plugins", root / "data", "hostile", "spawn", marker=str(marker)
        )
        _assert_nothing_started(answer, marker)


async def test_a_granted_process_permission_still_has_a_process_limit(tmp_path: Path) -> None:
    write_hostile(tmp_path / "plugins", process=True)
    answer = await call(tmp_path / "plugins", tmp_path / "data", "hostile", "forks", count=300)
    assert answer.isdigit() and 0 < int(answer) < 64  # forks worked, up to the limit (64 tasks)


def test_a_granted_process_permission_still_has_a_process_limit_as_nobody() -> None:
    with nobody_root() as root:
        write_hostile(root / "plugins", process=True)
        answer = call_as_nobody(root / "plugins", root / "data", "hostile", "forks", count=300)
    assert answer.isdigit() and 0 < int(answer) < 64


async def test_tmp_is_sized_to_the_memory_limit(tmp_path: Path) -> None:
    write_hostile(tmp_path / "plugins")
    answer = await call(
        tmp_path / "plugins", tmp_path / "data", "hostile", "fill_tmp", total_mb=1200
    )
    written = int(answer.split(" MB", 1)[0])
    assert "No space left on device" in answer and written <= 512  # the default 512 MB limit

"""The distribution installs one import package, ``opencomputer``: no generic top-level names
(``bot``, ``connectors``, ``graphs``, ``plugins``) land in a user's site-packages. The
repository keeps its folders; ``opencomputer/bot`` and the others link to them, and the build
copies their files into the package.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_only_the_opencomputer_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("opencomputer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"opencomputer"}
    for part in ("bot/runtime.py", "connectors/builtin.py", "graphs/agent/graph.py"):
        assert f"opencomputer/{part}" in names, part  # real files, not links
    assert "opencomputer/plugins/notes/plugin.json" in names  # data of the built-in plugins
    assert any(n.startswith("opencomputer/bot/storage/migrations/versions/") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    targets = [
        line.split("=", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(entry_points).decode().splitlines()
        if "=" in line
    ]
    assert targets and all(t.startswith("opencomputer.") for t in targets), targets

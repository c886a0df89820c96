"""deploy/Dockerfile, .dockerignore and the systemd unit, read as their tools read them."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.files import DEPLOY, ROOT, setting_names

DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "systemd" / "opencomputer.service"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1] :]


def test_base_image_and_install(instructions: list[tuple[str, str]]) -> None:
    args = dict(a.split("=", 1) for w, a in instructions if w == "ARG" and "=" in a)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    froms = [a for w, a in instructions if w == "FROM"]
    assert all(a.startswith("${PYTHON_IMAGE}") for a in froms)
    runs = " ".join(a for w, a in instructions if w == "RUN")
    assert "pip install ." in runs
    final = _final_stage(instructions)
    final_runs = " ".join(a for w, a in final if w == "RUN")
    assert re.search(r"apt-get install -y --no-install-recommends [^&]*\bbubblewrap\b", final_runs)
    assert "rm -rf /var/lib/apt/lists/*" in final_runs
    # what pip installs must be copied into the build stage
    copied = " ".join(a for w, a in instructions if w == "COPY")
    needed_all = ("pyproject.toml", "README.md", "opencomputer", "bot", "connectors", "graphs")
    for needed in (*needed_all, "plugins"):
        assert needed in copied, needed


def test_no_remote_add_and_non_root_user(instructions: list[tuple[str, str]]) -> None:
    for word, args in instructions:
        if word == "ADD":
            assert not re.search(r"https?://|git@", args), f"ADD of a URL: {args}"
    final = _final_stage(instructions)
    users = [a for w, a in final if w == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":", 1)[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "numeric, so Kubernetes runAsNonRoot can verify it"
    run = " ".join(a for w, a in final if w == "RUN")
    assert f"--uid {user}" in run


def test_entrypoint_command_health_and_volume(instructions: list[tuple[str, str]]) -> None:
    final = dict(_final_stage(instructions)[1:])  # last value per instruction
    assert json.loads(final["ENTRYPOINT"]) == ["opencomputer"]
    assert json.loads(final["CMD"]) == ["run"]
    assert json.loads(final["VOLUME"]) == ["/data"]
    assert final["EXPOSE"] == "8080"
    health = final["HEALTHCHECK"]
    assert "/healthz" in health and "--start-period=" in health
    env = dict(re.findall(r"(\w+)=(\S+)", final["ENV"]))
    assert env["OC_DATA_DIR"] == "/data" and env["OC_HTTP_PORT"] == "8080"
    assert env["OC_HTTP_HOST"] == "0.0.0.0"
    assert {k for k in env if k.startswith("OC_")} <= setting_names()


def test_healthcheck_command_is_valid_python(instructions: list[tuple[str, str]]) -> None:
    health = dict(_final_stage(instructions)[1:])["HEALTHCHECK"]
    command = json.loads(health.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    compile(command[2], "<healthcheck>", "exec")


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    for must in (".env", ".git", ".venv*", "**/*.env", "data", "*.db"):
        assert must in patterns, must
    for needed in ("README.md", "pyproject.toml", "bot", "plugins"):
        assert needed not in patterns, needed


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_unit_runs_single_process_mode(unit: configparser.ConfigParser) -> None:
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    program, *args = service["ExecStart"].split()
    assert program.startswith("/") and Path(program).name == "opencomputer"
    assert args == ["run"]
    assert service["EnvironmentFile"] == "/etc/opencomputer/env"
    assert service["User"] not in {"root", "0"}
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_unit_hardening(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    data_dir = re.search(r"OC_DATA_DIR=(\S+)", service["Environment"])
    assert data_dir is not None
    assert data_dir.group(1) in service["ReadWritePaths"].split()
    assert service["WorkingDirectory"] == data_dir.group(1)
    assert data_dir.group(1) == f"/var/lib/{service['StateDirectory']}"
    assert service["CapabilityBoundingSet"] == ""
    assert "RestrictNamespaces" not in service  # bubblewrap needs namespaces


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the INI checks above still ran")
    # verify wants the programs to exist: point them at this checkout's opencomputer
    program = Path(sys.executable).parent / "opencomputer"
    if not program.exists():
        pytest.skip(f"{program} is not installed (pip install -e .)")
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/opencomputer/bin/opencomputer", str(program)
    )
    copy = tmp_path / "opencomputer.service"
    copy.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False, timeout=60
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 0 and not problems, problems

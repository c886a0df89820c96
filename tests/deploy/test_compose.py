"""deploy/compose.yml: structure, references, the Compose spec, and ``docker compose config``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.files import DEPLOY, load_yaml_documents, setting_names

COMPOSE = DEPLOY / "compose.yml"
OURS = ("migrate", "gateway", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml_documents(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"ollama", "ollama-pull", "redis", "postgres", *OURS}
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
    ours = [services[name] for name in OURS]
    assert all(s["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"} for s in ours)
    assert len({s["image"] for s in ours}) == 1  # one image, three roles
    assert (DEPLOY.parent / ours[0]["build"]["dockerfile"]).is_file()
    assert services["gateway"]["command"] == ["gateway"]
    assert services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "deploy" not in services["gateway"]  # exactly one gateway
    assert services["gateway"]["ports"] == ["127.0.0.1:8080:8080"]  # loopback: a proxy in front


def test_gateway_and_workers_share_storage_and_bus(compose: dict[str, Any]) -> None:
    services = compose["services"]
    envs = [_env(services[name]) for name in OURS]
    for key in ("OC_DATABASE_URL", "OC_REDIS_URL", "OLLAMA_HOST"):
        assert len({env[key] for env in envs}) == 1, key
    env = envs[1]
    assert env["OC_DATABASE_URL"].startswith("postgresql://opencomputer:${POSTGRES_PASSWORD")
    assert env["OC_DATABASE_URL"].endswith("@postgres:5432/opencomputer")
    assert env["OC_REDIS_URL"] == "redis://redis:6379/0"
    assert env["OLLAMA_HOST"] == "http://ollama:11434"
    assert env["OC_HTTP_HOST"] == "0.0.0.0" and env["OC_HTTP_PORT"] == "8080"
    known = setting_names()
    for name in OURS:
        assert set(_env(services[name])) <= known, name
    pg = _env(services["postgres"])
    assert pg["POSTGRES_USER"] == "opencomputer" and pg["POSTGRES_DB"] == "opencomputer"
    assert pg["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_secrets_come_from_env_files_with_templates(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["gateway"]["env_file"] == [".env", "platforms.env"]
    assert services["worker"]["env_file"] == [".env"]  # no platform token on workers
    templates = {".env": "env.example", "platforms.env": "platforms.env.example"}
    known = setting_names() | {"POSTGRES_PASSWORD"}
    for env_file, template in templates.items():
        text = (DEPLOY / template).read_text(encoding="utf-8")
        names = [
            line.lstrip("# ").split("=", 1)[0]
            for line in text.splitlines()
            if "=" in line and line.lstrip("# ").split("=", 1)[0].isupper()
        ]
        assert names, env_file
        assert set(names) <= known, set(names) - known
        for line in text.splitlines():  # templates carry no secret values
            if line.startswith(("POSTGRES_PASSWORD=", "TELEGRAM_BOT_TOKEN=")):
                assert line.endswith("="), line
    ignored = (DEPLOY.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "deploy/platforms.env" in ignored  # filled-in copies stay out


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"ollama-pull", "migrate"}
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        if name in one_shot:
            continue
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        if name in OURS:
            assert "/healthz" in " ".join(check["test"])
    for name, service in services.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            assert dep in services and dep != name, (name, dep)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), (name, dep)
            else:
                assert condition == "service_completed_successfully" and dep in one_shot
    gateway = services["gateway"]["depends_on"]
    assert gateway["migrate"]["condition"] == "service_completed_successfully"
    assert gateway["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_volumes(compose: dict[str, Any]) -> None:
    services, declared = compose["services"], set(compose["volumes"])
    used: set[str] = set()
    for service in services.values():
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]  # streams survive a restart
    assert "gateway-data:/data" in services["gateway"]["volumes"]


def test_gpu_reservation_is_there_but_commented(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert "deploy" not in compose["services"]["ollama"]
    block = [line for line in text.splitlines() if "driver: nvidia" in line]
    assert len(block) == 1 and block[0].lstrip().startswith("#")
    uncommented = "\n".join(
        line.replace("#", "", 1) for line in text.splitlines() if line.strip().startswith("#")
    )
    assert "capabilities: [gpu]" in uncommented


def test_compose_spec() -> None:
    compose_spec = pytest.importorskip("compose_spec", reason="compose-spec not installed")
    text = COMPOSE.read_text(encoding="utf-8")
    parsed = compose_spec.PyOptions(apply_merge=True).from_yaml(text)
    parsed.validate()
    assert set(parsed.service_names()) == {"ollama", "ollama-pull", "redis", "postgres", *OURS}
    # the validator does catch mistakes (so a pass above means something)
    for broken in (
        text.replace("condition: service_healthy", "condition: service_ready", 1),
        text.replace("interval: 30s", "interval: thirty", 1),
        text.replace("restart: unless-stopped", "restrat: unless-stopped", 1),
    ):
        with pytest.raises(ValueError):
            compose_spec.PyOptions(apply_merge=True).from_yaml(broken).validate()


def _docker_compose() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and "version 1." not in probe.stdout:  # v1 lacks `name:`
            return cmd
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    cmd = _docker_compose()
    if cmd is None:
        pytest.skip(
            "the docker compose plugin is not installed here (checked: docker compose, "
            "docker-compose); the spec check above still ran"
        )
    folder = tmp_path / "deploy"
    folder.mkdir()
    shutil.copy(COMPOSE, folder / "compose.yml")
    (folder / ".env").write_text(
        (DEPLOY / "env.example").read_text().replace("POSTGRES_PASSWORD=", "POSTGRES_PASSWORD=x")
    )
    shutil.copy(DEPLOY / "platforms.env.example", folder / "platforms.env")
    result = subprocess.run(
        [*cmd, "-f", str(folder / "compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr

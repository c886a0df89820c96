"""deploy/k8s: every manifest against the official JSON schemas, plus how they fit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.files import DEPLOY, exported_series, load_yaml_documents, setting_names

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate (test extra) ships the schemas"
)

K8S = DEPLOY / "k8s"
NOT_OBJECTS = {"kustomization.yaml", "prometheus-adapter-rules.yaml"}
VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())


def _objects() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name not in NOT_OBJECTS:
            found += [(path, doc) for doc in load_yaml_documents(path)]
    return found


OBJECTS = _objects()
BY_KIND: dict[str, dict[str, dict[str, Any]]] = {}
for _path, _doc in OBJECTS:
    BY_KIND.setdefault(_doc["kind"], {})[_doc["metadata"]["name"]] = _doc


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("path", "doc"), OBJECTS, ids=[f"{p.name}:{d['kind']}" for p, d in OBJECTS]
)
def test_schema(path: Path, doc: dict[str, Any], version: str) -> None:
    # strict: an unknown or misspelt field is an error, not silently ignored by the API server
    kubernetes_validate.validate(doc, version, strict=True)
    expected_namespace = None if doc["kind"] == "Namespace" else "opencomputer"
    assert doc["metadata"].get("namespace") == expected_namespace
    assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "opencomputer"


def test_the_validator_rejects_mistakes() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(BY_KIND["Deployment"]["opencomputer-worker"]))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_kinds_and_kustomization() -> None:
    assert set(BY_KIND) == {
        "Namespace",
        "Secret",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Job",
    }
    assert set(BY_KIND["Deployment"]) == {"opencomputer-gateway", "opencomputer-worker"}
    (kustomization,) = load_yaml_documents(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]  # a template, not applied


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]


@pytest.mark.parametrize("name", ["opencomputer-gateway", "opencomputer-worker"])
def test_deployment_wiring(name: str) -> None:
    deployment = BY_KIND["Deployment"][name]
    template = _pod(deployment)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    spec = template["spec"]
    (container,) = spec["containers"]
    assert container["args"] == [name.removeprefix("opencomputer-")]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) in ports.values()
    # resources and a locked-down security context
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]
    pod_security, security = spec["securityContext"], container["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # a read-only root: everything written goes to a mounted volume
    volumes = {v["name"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) == volumes and {"/data", "/tmp"} <= set(mounts)
    # settings from the ConfigMap and Secrets the manifests define
    for source in container["envFrom"]:
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        assert ref["name"] in BY_KIND[kind], ref


def test_only_the_gateway_gets_platform_tokens() -> None:
    def secrets(name: str) -> set[str]:
        (container,) = _pod(BY_KIND["Deployment"][name])["spec"]["containers"]
        return {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}

    assert secrets("opencomputer-gateway") == {"opencomputer", "opencomputer-platforms"}
    assert secrets("opencomputer-worker") == {"opencomputer"}
    gateway = BY_KIND["Deployment"]["opencomputer-gateway"]["spec"]
    assert gateway["replicas"] == 1 and gateway["strategy"]["type"] == "Recreate"
    claim = _pod(BY_KIND["Deployment"]["opencomputer-gateway"])["spec"]["volumes"][0]
    assert claim["persistentVolumeClaim"]["claimName"] in BY_KIND["PersistentVolumeClaim"]


def test_service_reaches_the_gateway() -> None:
    service = BY_KIND["Service"]["opencomputer-gateway"]
    pod = _pod(BY_KIND["Deployment"]["opencomputer-gateway"])
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    (container,) = pod["spec"]["containers"]
    assert port["port"] == 8080
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    worker = _pod(BY_KIND["Deployment"]["opencomputer-worker"])
    assert not service["spec"]["selector"].items() <= worker["metadata"]["labels"].items()


def test_settings_and_secret_template() -> None:
    known = setting_names()
    config = BY_KIND["ConfigMap"]["opencomputer"]["data"]
    assert set(config) <= known, set(config) - known
    assert all(isinstance(v, str) for v in config.values())
    for secret in BY_KIND["Secret"].values():
        assert set(secret["stringData"]) <= known
        assert all(value == "" for value in secret["stringData"].values()), "template only"
    assert {"OC_DATABASE_URL", "OC_REDIS_URL"} <= set(
        BY_KIND["Secret"]["opencomputer"]["stringData"]
    )


def test_worker_autoscaling_on_an_exported_backlog_metric() -> None:
    hpa = BY_KIND["HorizontalPodAutoscaler"]["opencomputer-worker"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "opencomputer-worker")
    (metric,) = hpa["metrics"]
    name = metric["external"]["metric"]["name"]
    assert name in exported_series()
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    partitions = int(BY_KIND["ConfigMap"]["opencomputer"]["data"]["OC_PARTITIONS"])
    assert hpa["maxReplicas"] <= partitions  # more workers than partitions would idle
    (rules,) = load_yaml_documents(K8S / "prometheus-adapter-rules.yaml")
    (rule,) = rules["rules"]["external"]
    assert rule["name"]["as"] == name and name in rule["metricsQuery"]
    assert rule["metricsQuery"].startswith("max(")

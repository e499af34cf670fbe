"""Every kustomize rendering is valid Kubernetes for a named release and holds our promises.

Rendering uses ``kustomize_lite`` (no kubectl needed); where kubectl is installed its own
``kubectl kustomize`` output must be identical. Built-in kinds are validated with
kubernetes-validate (strict: unknown fields fail) against ``KUBERNETES_VERSION``; custom
resources against the structural schemas in ``crd_schemas``.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import shutil
import subprocess
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .crd_schemas import SCHEMAS
from .kustomize_lite import load_documents, render
from .support import K8S_DIR, KUBERNETES_VERSION, MONITORING_DIR

Resource = dict[str, Any]

TARGETS = {
    "base": K8S_DIR / "base",
    "dev": K8S_DIR / "overlays" / "dev",
    "prod": K8S_DIR / "overlays" / "prod",
}
OVERLAYS = {"dev": "fhir-gateway-dev", "prod": "fhir-gateway"}
TEMPLATES = [
    K8S_DIR / "base" / "secret.template.yaml",
    K8S_DIR / "overlays" / "prod" / "backup-credentials.template.yaml",
]
APP = {"app.kubernetes.io/name": "fhir-gateway"}
SERVER = {**APP, "app.kubernetes.io/component": "server"}


@cache
def rendered(target: str) -> tuple[Resource, ...]:
    return tuple(render(TARGETS[target]))


def of_kind(target: str, kind: str) -> list[Resource]:
    return [r for r in rendered(target) if r["kind"] == kind]


def one(target: str, kind: str, name: str) -> Resource:
    (found,) = [r for r in of_kind(target, kind) if r["metadata"]["name"] == name]
    return found


def validate(resource: Resource) -> None:
    schema = SCHEMAS.get((resource["apiVersion"], resource["kind"]))
    if schema is not None:
        jsonschema.validate(resource, schema)
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def pod_templates(target: str) -> list[tuple[str, Resource]]:
    return [
        (f"{r['kind']}/{r['metadata']['name']}", r["spec"]["template"])
        for r in rendered(target)
        if r["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    ]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("target", TARGETS)
def test_rendering_validates_against_kubernetes_schemas(target: str) -> None:
    resources = rendered(target)
    assert resources
    for resource in resources:
        validate(resource)


def test_secret_templates_validate_and_hold_only_placeholders() -> None:
    for path in TEMPLATES:
        for secret in load_documents(path):
            validate(secret)
            for value in secret["stringData"].values():
                assert "REPLACE_ME" in value, f"{path.name}: real-looking secret value"


def test_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one("prod", "Deployment", "fhir-gateway"))
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    cluster = copy.deepcopy(one("prod", "Cluster", "fhir-gateway-db"))
    cluster["spec"]["instance"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate(cluster)


@pytest.mark.parametrize("target", TARGETS)
def test_renderer_agrees_with_kubectl_kustomize(target: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the Python renderer alone is used")
    result = subprocess.run(
        [kubectl, "kustomize", str(TARGETS[target])], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip("this kubectl has no built-in kustomize")
    assert result.returncode == 0, result.stderr
    theirs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def canonical(docs: Any) -> list[str]:
        return sorted(json.dumps(doc, sort_keys=True) for doc in docs)

    assert canonical(rendered(target)) == canonical(theirs)


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_locked_down(target: str) -> None:
    templates = pod_templates(target)
    assert {name for name, _ in templates} == {
        "Deployment/fhir-gateway",
        "Job/fhir-gateway-migrate",
    }
    for name, template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["seccompProfile"]["type"] == "RuntimeDefault", name
            assert "memory" in container["resources"]["limits"], name
            assert "cpu" in container["resources"]["requests"], name
            assert not container["image"].endswith(":latest"), name
            for mount in container.get("volumeMounts", []):
                assert "emptyDir" in volumes[mount["name"]], f"{name}: {mount['mountPath']}"
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, name


@pytest.mark.parametrize("target", TARGETS)
def test_server_probes_metrics_dir_and_service_wiring(target: str) -> None:
    deployment = one(target, "Deployment", "fhir-gateway")
    pod = deployment["spec"]["template"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    (server,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    env = {e["name"]: e for e in server["env"]}
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
    assert multiproc in {m["mountPath"] for m in server["volumeMounts"]}

    service = one(target, "Service", "fhir-gateway")
    assert matches(service["spec"]["selector"], pod["metadata"]["labels"])
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)

    pdb = one(target, "PodDisruptionBudget", "fhir-gateway")
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])

    hpa = one(target, "HorizontalPodAutoscaler", "fhir-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "fhir-gateway",
    }
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}

    monitor = one(target, "ServiceMonitor", "fhir-gateway")
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }
    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}


@pytest.mark.parametrize("target", TARGETS)
def test_ingress_serves_only_the_public_api_over_tls(target: str) -> None:
    ingress = one(target, "Ingress", "fhir-gateway")
    service = one(target, "Service", "fhir-gateway")
    tls_hosts = {h for entry in ingress["spec"]["tls"] for h in entry["hosts"]}
    paths = set()
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls_hosts
        for path in rule["http"]["paths"]:
            paths.add(path["path"])
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert paths == {"/fhir", "/cds-services"}


@pytest.mark.parametrize("target", TARGETS)
def test_referenced_config_and_secrets_exist(target: str) -> None:
    config_maps = {r["metadata"]["name"]: r for r in of_kind(target, "ConfigMap")}
    secrets = {s["metadata"]["name"]: s for path in TEMPLATES for s in load_documents(path)}
    # CloudNativePG creates <cluster>-app with the connection URI of the application role.
    generated = {f"{c['metadata']['name']}-app": {"uri"} for c in of_kind(target, "Cluster")}
    for name, template in pod_templates(target):
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                if ref["name"] in generated:
                    assert ref["key"] in generated[ref["name"]]
                else:
                    assert ref["key"] in secrets[ref["name"]]["stringData"], (name, ref)
    for cluster in of_kind(target, "Cluster"):
        backup = cluster["spec"].get("backup", {}).get("barmanObjectStore")
        if backup:
            for ref in backup["s3Credentials"].values():
                assert ref["key"] in secrets[ref["name"]]["stringData"]


def policies(target: str) -> list[Resource]:
    return of_kind(target, "NetworkPolicy")


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_let_in_only_ingress_and_prometheus(target: str) -> None:
    deny = [
        p
        for p in policies(target)
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny and deny[0]["spec"]["podSelector"]["matchLabels"] == APP
    sources = set()
    for policy in policies(target):
        for rule in policy["spec"].get("ingress", []):
            assert {p["port"] for p in rule["ports"]} == {8080}
            for peer in rule["from"]:
                sources.add(
                    (
                        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
                    )
                )
    assert sources == {("ingress-nginx", "ingress-nginx"), ("monitoring", "prometheus")}


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_let_out_only_dns_postgres_and_https(target: str) -> None:
    allowed: set[tuple[str, int]] = set()
    for policy in policies(target):
        assert matches(policy["spec"]["podSelector"]["matchLabels"], SERVER)
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: egress to anywhere"
            ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
            allowed |= ports
            if ports <= {("UDP", 53), ("TCP", 53)}:
                (peer,) = rule["to"]
                assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
            elif ports == {("TCP", 5432)}:
                (peer,) = rule["to"]
                assert peer["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "fhir-gateway-db"}
            else:
                assert ports == {("TCP", 443)}
                for peer in rule["to"]:
                    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    assert network.prefixlen >= 16, f"{network} is far wider than a few hosts"
    assert allowed == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)}


@pytest.mark.parametrize("target", OVERLAYS)
def test_overlay_places_everything_in_its_namespace_and_runs_its_image(target: str) -> None:
    namespace = OVERLAYS[target]
    (ns,) = of_kind(target, "Namespace")
    assert ns["metadata"]["name"] == namespace
    for resource in rendered(target):
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace
        assert resource["metadata"]["labels"]["environment"] == target
    images = {
        c["image"] for _, template in pod_templates(target) for c in template["spec"]["containers"]
    }
    assert len(images) == 1
    assert next(iter(images)).startswith("registry.example.org/fhir-gateway:")
    deployment = one(target, "Deployment", "fhir-gateway")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    url = {e["name"]: e for e in server["env"]}["FHIR_GATEWAY_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "fhir-gateway-db-app", "key": "uri"}


def test_prod_database_is_a_three_instance_cluster_with_scheduled_backups() -> None:
    cluster = one("prod", "Cluster", "fhir-gateway-db")
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["affinity"]["enablePodAntiAffinity"] is True
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    (scheduled,) = of_kind("prod", "ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "barmanObjectStore"
    assert scheduled["metadata"]["namespace"] == cluster["metadata"]["namespace"]
    assert one("prod", "HorizontalPodAutoscaler", "fhir-gateway")["spec"]["minReplicas"] >= 2


def test_dev_database_is_a_single_instance_cluster() -> None:
    (cluster,) = of_kind("dev", "Cluster")
    assert cluster["spec"]["instances"] == 1
    assert not of_kind("dev", "ScheduledBackup")


def test_dashboard_config_map_carries_the_dashboard_file() -> None:
    config_map = one("prod", "ConfigMap", "fhir-gateway-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["fhir-gateway.json"])
    assert dashboard == json.loads((MONITORING_DIR / "grafana-dashboard.json").read_text())


def test_prometheus_rule_carries_exactly_the_alert_rule_file() -> None:
    rule = one("prod", "PrometheusRule", "fhir-gateway")
    rule_file = yaml.safe_load((MONITORING_DIR / "alert-rules.yaml").read_text())
    assert rule["spec"]["groups"] == rule_file["groups"]


def test_migration_job_and_server_use_the_same_settings() -> None:
    deployment = one("prod", "Deployment", "fhir-gateway")
    job = one("prod", "Job", "fhir-gateway-migrate")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["image"] == server["image"]
    assert migrate["args"] == ["migrate"]
    assert migrate["envFrom"] == server["envFrom"]
    server_env = {e["name"]: e for e in server["env"]}
    for variable in migrate["env"]:
        assert server_env[variable["name"]] == variable

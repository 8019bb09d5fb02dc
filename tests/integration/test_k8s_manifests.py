"""The Kubernetes manifests (deploy/k8s/) agree with the compose stack and the platform; no cluster.

The base and the production overlay are rendered by deploy/render.py (the kustomize subset they
use; deploy/check.sh validates the same rendering against the Kubernetes and KEDA schemas and runs
checkov). Here: each compose role has its Deployment with the same command, probes, resources,
security context and disruption budget; the ScaledObjects name the platform's queues; the Secret is
referenced and never defined; the Ingress sends /ws/ to ws, refuses /metrics, and has its own
answers written by the error backend, which runs as restricted as the platform.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.urls import resolve

from config.problems import DEFAULT_CODES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SECRET = "events-secrets"
IMAGE = "events-platform"

# compose service -> the -Q queue of its command
WORKERS = {
    "worker-notifications": "notifications",
    "worker-reports": "reports",
    "worker-admissions": "admissions",
}
LONG_RUNNING = ("web", "ws", *WORKERS, "relay", "beat")
MEDIA_USERS = {"web", "worker-reports", "worker-notifications"}


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_render", ROOT / "deploy" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(_render_module().render(K8S / overlay))


@cache
def compose_services() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]


def objects(kind: str, overlay: str = "base") -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in rendered(overlay) if obj["kind"] == kind}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(obj)["containers"]
    assert len(containers) == 1, obj["metadata"]["name"]
    return containers[0]


def compose_command(name: str) -> list[str]:
    command = compose_services()[name]["command"]
    # Compose escapes a literal $ as $$.
    return [part.replace("$$", "$") for part in command]


def compose_environment(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose_services()[name].get("environment", {}).items()}


def env(obj: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container(obj).get("env", [])}


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


# --- Roles -------------------------------------------------------------------------------------------


def test_every_compose_role_of_the_application_image_is_here():
    image = compose_services()["web"]["image"]
    roles = {name for name, service in compose_services().items() if service.get("image") == image}
    assert roles == {*LONG_RUNNING, "migrate"}
    # Plus the ingress's error backend, an nginx of its own (errors.yaml).
    assert set(objects("Deployment")) == {*LONG_RUNNING, "errors"}
    assert set(objects("Job")) == {"migrate"}


@pytest.mark.parametrize("name", [*LONG_RUNNING, "migrate"])
def test_same_command_and_image_as_compose(name):
    obj = objects("Job" if name == "migrate" else "Deployment")[name]
    assert container(obj)["command"] == compose_command(name)
    assert container(obj)["image"] == IMAGE  # the overlay names the registry and the tag


def test_exactly_one_celery_beat_never_two_during_a_rollout():
    beats = [obj for obj in objects("Deployment").values() if "beat" in container(obj)["command"]]
    assert [obj["metadata"]["name"] for obj in beats] == ["beat"]
    assert beats[0]["spec"]["replicas"] == 1
    assert beats[0]["spec"]["strategy"] == {"type": "Recreate"}
    assert "beat" not in objects("HorizontalPodAutoscaler") and "beat" not in objects("ScaledObject")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_probes(name):
    main = container(objects("Deployment")[name])
    live, ready = main["livenessProbe"], main["readinessProbe"]
    if name in ("web", "ws"):
        assert live["httpGet"]["path"] == "/health/live"
        # Not /health/ready: a shared backend's outage must not take every pod out at once.
        assert ready["httpGet"]["path"] == "/health/live"
        assert main["startupProbe"]["httpGet"]["path"] == "/health/live"
        ports = {port["name"]: port["containerPort"] for port in main["ports"]}
        assert ports[live["httpGet"]["port"]] == {"web": 8000, "ws": 8001}[name]
        assert resolve(live["httpGet"]["path"]).url_name == "health-live"
    elif name in WORKERS:
        # The compose healthcheck: ping this very worker, without the multiprocess metrics dir.
        probe = " ".join(live["exec"]["command"])
        queue = WORKERS[name]
        assert "env -u PROMETHEUS_MULTIPROC_DIR celery -A config inspect ping" in probe
        assert f'--destination "{queue}@$HOSTNAME"' in probe
        assert ready["tcpSocket"]["port"] == "metrics"
        assert live["timeoutSeconds"] >= 10
    elif name == "beat":  # no port: alive while it keeps writing its schedule file
        probe = " ".join(live["exec"]["command"])
        assert "celerybeat-schedule" in probe and "-mmin -5" in probe
        assert " ".join(compose_services()[name]["healthcheck"]["test"][1:]) in probe
    else:  # the relay: a process check on its metrics server
        assert live["tcpSocket"]["port"] == ready["tcpSocket"]["port"] == "metrics"


@pytest.mark.parametrize("name", [*LONG_RUNNING, "migrate"])
def test_requests_and_limits(name):
    obj = objects("Job" if name == "migrate" else "Deployment")[name]
    resources = container(obj)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) >= {"cpu", "memory"}, (name, kind)


@pytest.mark.parametrize("name", [*LONG_RUNNING, "migrate"])
def test_non_root_read_only_with_the_writable_paths_mounted(name):
    obj = objects("Job" if name == "migrate" else "Deployment")[name]
    pod, main = pod_spec(obj), container(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (docker/Dockerfile)
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = main["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]

    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in main["volumeMounts"]}
    assert "emptyDir" in mounts["/tmp"]  # noqa: S108 (a path inside the container)
    multiproc = compose_environment(name).get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        assert env(obj)["PROMETHEUS_MULTIPROC_DIR"]["value"] == multiproc
        assert "emptyDir" in mounts[multiproc]  # its own, empty when the pod starts
    else:
        assert "PROMETHEUS_MULTIPROC_DIR" not in env(obj)
    if name in MEDIA_USERS:
        assert mounts["/app/var/media"]["persistentVolumeClaim"]["claimName"] == "media"
    # Not all of var/: the image's collected static files live in var/static.
    assert "/app/var" not in mounts


@pytest.mark.parametrize("name", [name for name in LONG_RUNNING if name != "beat"])  # beat has no metrics
def test_metrics_port_and_scrape_annotations(name):
    obj = objects("Deployment")[name]
    annotations = obj["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    port = int(annotations["prometheus.io/port"])
    compose_port = compose_environment(name).get("METRICS_PORT")
    if compose_port:
        assert env(obj)["METRICS_PORT"]["value"] == compose_port == str(port)
    else:
        assert port == {"web": 8000, "ws": 8001}[name]
    allowed = objects("NetworkPolicy")["prometheus-to-metrics"]["spec"]["ingress"][0]["ports"]
    assert port in {rule["port"] for rule in allowed}


@pytest.mark.parametrize("name", ["web", "ws"])
def test_http_roles_admit_their_pod_ip_as_host(name):
    # kubelet and Prometheus address the pod by IP; Django refuses a Host it does not know.
    variables = env(objects("Deployment")[name])
    assert variables["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert variables["ALLOWED_HOSTS"]["value"] == "$(ALLOWED_HOSTS),$(POD_IP)"
    assert objects("ConfigMap")["events-config"]["data"]["ALLOWED_HOSTS"]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_a_disruption_budget_per_role(name):
    deployment = objects("Deployment")[name]
    budget = objects("PodDisruptionBudget")[name]
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_grace_period_fits_the_shutdown(name):
    grace = pod_spec(objects("Deployment")[name])["terminationGracePeriodSeconds"]
    assert grace >= seconds(compose_services()[name]["stop_grace_period"])
    if name == "ws":
        command = container(objects("Deployment")[name])["command"]
        drain = int(command[command.index("--timeout-graceful-shutdown") + 1])
        pre_stop = int(container(objects("Deployment")[name])["lifecycle"]["preStop"]["exec"]["command"][1])
        assert grace > drain + pre_stop


def test_the_migration_job_runs_once_and_is_applied_apart():
    job = objects("Job")["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    # What it needs first carries the label the README's first apply selects.
    for kind, name in (("ConfigMap", "events-config"), ("ServiceAccount", "events-platform")):
        assert objects(kind)[name]["metadata"]["labels"]["app.kubernetes.io/component"] == "config"


# --- Autoscaling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["web", "ws"])
def test_web_and_ws_scale_on_cpu(name):
    hpa = objects("HorizontalPodAutoscaler")[name]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2


def test_the_scaled_objects_name_the_right_queues():
    scaled = objects("ScaledObject")
    assert set(scaled) == set(WORKERS)
    declared = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    assert set(WORKERS.values()) == declared
    auth = objects("TriggerAuthentication")
    for name, queue in WORKERS.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        command = container(objects("Deployment")[name])["command"]
        assert command[command.index("-Q") + 1] == queue
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == queue
        assert trigger["metadata"]["mode"] == "QueueLength"
        refs = auth[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        assert {"parameter": "host", "name": SECRET, "key": "CELERY_BROKER_URL"} in refs


def test_autoscaled_deployments_leave_the_count_to_their_autoscaler():
    for name in ("web", "ws", *WORKERS):
        assert "replicas" not in objects("Deployment")[name]["spec"], name


# --- Configuration and secrets -----------------------------------------------------------------------


def secret_references(obj: Any) -> list[tuple[str, str | None]]:
    """(secret name, key or None for a whole secretRef) anywhere in OBJ."""
    found: list[tuple[str, str | None]] = []
    if isinstance(obj, dict):
        if "secretRef" in obj:
            found.append((obj["secretRef"]["name"], None))
        if "secretKeyRef" in obj:
            found.append((obj["secretKeyRef"]["name"], obj["secretKeyRef"]["key"]))
        for value in obj.values():
            found.extend(secret_references(value))
    elif isinstance(obj, list):
        for value in obj:
            found.extend(secret_references(value))
    return found


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_the_secret_is_referenced_never_defined(overlay):
    assert not objects("Secret", overlay)
    for name in (*LONG_RUNNING, "migrate"):
        kind = "Job" if name == "migrate" else "Deployment"
        refs = secret_references(objects(kind, overlay)[name])
        assert (SECRET, None) in refs, name
        assert {secret for secret, _ in refs} == {SECRET}, name
    # No kustomization lists the example.
    for kustomization in K8S.rglob("kustomization.yaml"):
        assert "secret.example" not in kustomization.read_text()


def test_the_secret_example_holds_placeholders_for_every_referenced_key():
    (example,) = yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
    assert example["kind"] == "Secret" and example["metadata"]["name"] == SECRET
    values = example["stringData"]
    for key in ("SECRET_KEY", "ADMIN_PASSWORD"):
        assert values[key].startswith("change-me")
    for key in ("DATABASE_URL", "DATABASE_URL_DIRECT", "CELERY_BROKER_URL", "EMAIL_URL"):
        assert "change-me" in values[key], key
    keys = {key for obj in rendered("base") for _, key in secret_references(obj) if key}
    keys |= {
        ref["key"]
        for auth in objects("TriggerAuthentication").values()
        for ref in auth["spec"]["secretTargetRef"]
    }
    assert keys <= set(values)


def test_configmap_names_only_documented_settings():
    readme = (ROOT / "README.md").read_text()
    for key in objects("ConfigMap")["events-config"]["data"]:
        assert f"`{key}`" in readme, key
    assert "SECRET_KEY" not in objects("ConfigMap")["events-config"]["data"]


# --- Network -----------------------------------------------------------------------------------------


def ingress_paths() -> dict[str, tuple[str, str, dict[str, str]]]:
    """path -> (pathType, backend service, the Ingress's annotations)."""
    paths = {}
    for ingress in objects("Ingress").values():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                service = entry["backend"]["service"]["name"]
                paths[entry["path"]] = (
                    entry["pathType"],
                    service,
                    ingress["metadata"].get("annotations", {}),
                )
    return paths


def test_the_ingress_routes_ws_to_ws_and_the_rest_to_web():
    paths = ingress_paths()
    path_type, service, annotations = paths["/ws/"]
    assert (path_type, service) == ("Prefix", "ws")
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert paths["/"][:2] == ("Prefix", "web")
    services = objects("Service")
    assert services["ws"]["spec"]["ports"][0]["port"] == 8001
    assert services["web"]["spec"]["ports"][0]["port"] == 8000


def test_the_ingress_refuses_metrics():
    path_type, _, annotations = ingress_paths()["/metrics"]
    assert path_type == "Exact"
    assert annotations["nginx.ingress.kubernetes.io/denylist-source-range"] == "0.0.0.0/0,::/0"


def test_only_the_ingress_controller_reaches_web_ws_and_the_error_backend():
    policies = objects("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and "ingress" not in deny
    for name, port in (("web", 8000), ("ws", 8001), ("errors", 8080)):
        spec = policies[f"ingress-controller-to-{name}"]["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        (rule,) = spec["ingress"]
        assert [p["port"] for p in rule["ports"]] == [port]
        (source,) = rule["from"]
        assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}


def error_backend_nginx_conf() -> str:
    return objects("ConfigMap")["errors-nginx"]["data"]["nginx.conf"]


@pytest.mark.parametrize("name", ["web", "ws"])
def test_the_ingress_answers_its_own_errors_through_the_error_backend(name):
    annotations = objects("Ingress")[name]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/default-backend"] == "errors"
    intercepted = {
        int(code) for code in annotations["nginx.ingress.kubernetes.io/custom-http-errors"].split(",")
    }
    # Each intercepted code has its own answer in the backend (its map or one of its branches;
    # tests/integration/test_nginx.py runs them), anything else would be answered 500.
    answered = re.findall(r'(?:\$http_x_code = |^ *)"(\d{3})"', error_backend_nginx_conf(), re.MULTILINE)
    assert intercepted == {int(code) for code in answered}
    # Never a code the platform answers with details of its own (validation errors, what was not
    # found, the queue's 503 with its Retry-After); its 413 says what the backend says.
    assert not intercepted & (set(DEFAULT_CODES) - {413})
    (service_port,) = objects("Service")["errors"]["spec"]["ports"]
    container_ports = {
        port["name"]: port["containerPort"] for port in container(objects("Deployment")["errors"])["ports"]
    }
    assert service_port["targetPort"] == "http" and container_ports["http"] == 8080  # not the probes'


def test_the_error_backend_runs_as_restricted_as_the_platform():
    deployment = objects("Deployment")["errors"]
    pod, main = pod_spec(deployment), container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # nginx itself (not the image's entrypoint), with the configuration test_nginx.py runs.
    assert main["command"][:3] == ["nginx", "-c", "/etc/errors/nginx.conf"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in main["volumeMounts"]}
    assert mounts["/etc/errors"]["configMap"]["name"] == "errors-nginx"
    assert "emptyDir" in mounts["/tmp"]  # noqa: S108 (a path inside the container)
    # On a read-only root, everything nginx writes is under /tmp or a standard stream (the tests
    # run it as root, with these paths moved: they cannot see this).
    written = re.findall(
        r"^\s*(pid|\w+_temp_path|error_log|access_log)\s+(\S+)", error_backend_nginx_conf(), re.M
    )
    assert {directive for directive, _ in written} >= {"pid", "client_body_temp_path", "proxy_temp_path"}
    for directive, path in written:
        assert path.startswith("/tmp/") or path in ("stderr", "/dev/stdout", "off;"), (directive, path)  # noqa: S108
    assert main["image"] == compose_services()["nginx"]["image"]  # one nginx for the project
    assert (
        main["livenessProbe"]["httpGet"]
        == main["readinessProbe"]["httpGet"]
        == {"path": "/healthz", "port": "probes"}
    )
    assert main["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert set(main["resources"]["requests"]) >= {"cpu", "memory"} <= set(main["resources"]["limits"])
    assert deployment["spec"]["replicas"] >= 2  # a drained node never leaves the ingress without it
    budget = objects("PodDisruptionBudget")["errors"]
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_a_changed_error_backend_configuration_rolls_its_pods():
    # nginx reads its configuration once: the pod template carries the ConfigMap's checksum.
    annotations = objects("Deployment")["errors"]["spec"]["template"]["metadata"]["annotations"]
    expected = hashlib.sha256(error_backend_nginx_conf().encode()).hexdigest()
    assert annotations["events-platform/config-sha256"] == expected, "update the annotation in errors.yaml"


# --- The production overlay --------------------------------------------------------------------------


def test_production_sets_namespace_image_and_tls():
    production = rendered("production")
    assert len(production) == len(rendered("base")) + 1  # plus its Namespace
    for obj in production:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "events-platform", obj["metadata"]["name"]
    for name in (*LONG_RUNNING, "migrate"):
        obj = objects("Job" if name == "migrate" else "Deployment", "production")[name]
        assert container(obj)["image"].startswith("ghcr.io/")
    for ingress in objects("Ingress", "production").values():
        assert ingress["spec"]["tls"][0]["secretName"] == "events-tls"
    namespace = objects("Namespace", "production")["events-platform"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

"""The inference server (`vera-registry serve-model`) in deploy/: compose services and the
chart's Deployment, Service and Secret. The generic checks (schemas, commands and options
that exist, secrets only in Secrets) run over these too, in test_deploy.py."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.test_deploy import COMPOSE, OVERRIDES, WORKER_DOCKERFILE, rendered_docs

CPU, GPU = OVERRIDES[2].values[0], OVERRIDES[1].values[0]


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_inference_services(services):
    cpu, gpu = services["inference"], services["inference-gpu"]
    assert cpu["profiles"] == ["inference"] and gpu["profiles"] == ["inference-gpu"]
    for name, service, device in (("inference", cpu, "cpu"), ("inference-gpu", gpu, "cuda")):
        argv = service["command"]
        assert argv[:2] == ["vera-registry", "serve-model"], name
        assert _option(argv, "--device") == device, name
        assert _option(argv, "--base-model") == "${VERA_SERVE_BASE_MODEL:-}", name
        # The registry by its compose service name, on the API's container port.
        assert _option(argv, "--registry") == "http://api:8300", name
        assert _option(argv, "--port") == "8100" and _option(argv, "--host") == "0.0.0.0"
        assert service["ports"][0].endswith(":8100"), name
        assert service["depends_on"] == {"api": {"condition": "service_healthy"}}, name
        assert "8100/readyz" in " ".join(service["healthcheck"]["test"]), name
        # A registry client: its key from the environment (never argv), no server secrets.
        assert service["environment"] == {"VERA_API_KEY": "${VERA_SERVE_API_KEY:-}"}, name
        assert "--api-key" not in argv
        # serve-model needs torch: the worker image, not the torch-free API image.
        assert service["build"]["dockerfile"] == "deploy/worker.Dockerfile", name
        assert "serve-cache:/var/lib/vera/serve-cache" in service["volumes"], name
        assert _option(argv, "--cache-dir") == "/var/lib/vera/serve-cache", name
        assert "container_name" not in service, name
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in cpu
    # Both may run at once: their host port ranges must not overlap.
    assert cpu["ports"][0].split(":-")[1].split("}")[0] == "8100-8109"
    assert gpu["ports"][0].split(":-")[1].split("}")[0] == "8110-8119"


def test_worker_image_has_what_serve_model_needs():
    # serve-model loads transformers models: the `train` extra (torch, transformers).
    assert 'pip install "/app[train]"' in WORKER_DOCKERFILE.read_text()


def _inference(overrides: dict) -> tuple[dict, dict, dict]:
    docs = rendered_docs(overrides)
    (deployment,) = [
        d
        for _, d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("inference")
    ]
    (service,) = [
        d for _, d in docs if d["kind"] == "Service" and "inference" in d["metadata"]["name"]
    ]
    secrets = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Secret"}
    return deployment, service, secrets


def test_helm_inference_is_off_by_default():
    names = {d["metadata"]["name"] for _, d in rendered_docs({})}
    assert not {n for n in names if "inference" in n}


def test_helm_inference_cpu():
    deployment, service, secrets = _inference(CPU)
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container["command"]
    assert argv[:2] == ["vera-registry", "serve-model"]
    assert _option(argv, "--base-model") == "bm_0123"
    assert _option(argv, "--device") == "cpu"
    # Default registry URL: this release's API Service on its port.
    assert _option(argv, "--registry") == "http://vera-api:8300"
    assert (_option(argv, "--adapter"), _option(argv, "--alias")) == ("default", "live")
    assert _option(argv, "--cache-dir") in {m["mountPath"] for m in container["volumeMounts"]}
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    (env,) = [e for e in container["env"] if e["name"] == "VERA_API_KEY"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "vera-inference", "key": "VERA_API_KEY"}
    assert secrets["vera-inference"]["stringData"] == {"VERA_API_KEY": "vk_inference"}
    assert container["ports"] == [{"name": "http", "containerPort": 8100, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["failureThreshold"] * 10 >= 300, "time to load a model"
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8100"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == labels
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert service["spec"]["ports"][0]["port"] == 8100
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_helm_inference_gpu_and_existing_secret():
    deployment, _, secrets = _inference(GPU)
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert _option(container["command"], "--device") == "cuda"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1, "memory": "8Gi"}
    assert pod["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "nvidia.com/gpu.product": "NVIDIA-L4",
    }
    assert pod["tolerations"] == GPU["inference"]["tolerations"]
    (env,) = [e for e in container["env"] if e["name"] == "VERA_API_KEY"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == "vera-inference-key"
    assert "vera-inference" not in secrets, "the key comes from the existing Secret only"


def test_helm_inference_registry_url_and_batching_from_values():
    overrides = {
        "inference": {
            **CPU["inference"],
            "registryUrl": "https://registry.example.com",
            "maxBatchTokens": 8192,
            "maxWaitMs": 2,
            "maxUsers": 64,
            "gpu": True,  # without gpuType: a GPU limit but no GPU-kind selector
        }
    }
    deployment, _, _ = _inference(overrides)
    pod = deployment["spec"]["template"]["spec"]
    argv = pod["containers"][0]["command"]
    assert _option(argv, "--registry") == "https://registry.example.com"
    assert _option(argv, "--max-batch-tokens") == "8192"
    assert _option(argv, "--max-wait-ms") == "2"
    assert _option(argv, "--max-users") == "64"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1

"""`gptoss export --format kubernetes`: the objects validate against Kubernetes' own schemas (offline), run the
plan's engine flags, never hold the API key, and match their golden files."""
from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from gptoss_deploy.backends.export import PORT

from golden import EXPORT_CASES as CASES
from golden import EXPORT_DIR, exported, golden_environment
from helpers import fixture_path

KUBERNETES = "1.31.0"


def export(run_cli, *flags: str) -> tuple[str, list[dict]]:
    code, out, err = run_cli("export", "--format", "kubernetes", *flags)
    assert code == 0, err
    return out, list(yaml.safe_load_all(out))


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] == "kubernetes"])
def test_the_objects_validate_against_the_kubernetes_schemas_and_match_their_golden_file(case):
    with golden_environment():
        text = exported(case)
    objects = list(yaml.safe_load_all(text))
    assert [o["kind"] for o in objects] == ["PersistentVolumeClaim", "Deployment", "Service"]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    assert text == (EXPORT_DIR / case).read_text(), "refresh with tests/golden.py after a deliberate change"


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] == "compose"])
def test_compose_files_have_the_shape_compose_reads_and_match_their_golden_file(case):
    with golden_environment():
        text = exported(case)
    document = yaml.safe_load(text)
    assert set(document) == {"services", "volumes"} and document["volumes"] == {"models": {}}
    for service in document["services"].values():
        assert isinstance(service["image"], str) and all(isinstance(a, str) for a in service["command"])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in service["environment"].items())
        assert [v for k, v in service["environment"].items() if k.endswith("API_KEY")] == \
            ["${GPTOSS_API_KEY:?set GPTOSS_API_KEY}"]                          # never a key, only where it comes from
        host, published, inside = service["ports"][0].split(":")
        assert host == "127.0.0.1" and inside == str(PORT) and published.isdigit()
        assert service["shm_size"] == "16gb" and service["volumes"] == ["models:/models"]
    assert text == (EXPORT_DIR / case).read_text(), "refresh with tests/golden.py after a deliberate change"


def test_compose_gives_each_llamacpp_copy_its_own_gpu_and_port(run_cli):
    code, out, err = run_cli("export", *CASES["compose-2x-rtx3090-20b-copies.yaml"])
    assert code == 0, err
    services = yaml.safe_load(out)["services"]
    devices = [s["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for s in services.values()]
    assert devices == [["0"], ["1"]]
    assert [s["ports"] for s in services.values()] == [[f"127.0.0.1:{PORT}:{PORT}"], [f"127.0.0.1:{PORT + 1}:{PORT}"]]


def test_compose_on_amd_passes_the_rocm_devices(run_cli):
    service = next(iter(yaml.safe_load(run_cli("export", *CASES["compose-mi300x-120b.yaml"])[1])["services"].values()))
    assert service["devices"] == ["/dev/kfd", "/dev/dri"] and service["group_add"] == ["video"]


def container(objects: list[dict]) -> dict:
    [pod] = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    return pod["containers"][0]


def test_the_pod_runs_the_plans_flags_with_the_key_from_a_secret(run_cli):
    plan = json.loads(run_cli("plan", "--json", "--gpu", "H100", "--model", "120b")[1])
    text, objects = export(run_cli, *CASES["h100-120b-5000tps.yaml"][2:])
    c = container(objects)
    assert c["command"] == ["vllm", "serve"] and c["args"][0] == "openai/gpt-oss-120b"
    assert c["args"][c["args"].index("--max-model-len") + 1] == str(plan["context_length"])
    assert c["args"][c["args"].index("--host") + 1] == "0.0.0.0"
    key = next(e for e in c["env"] if e["name"] == "VLLM_API_KEY")
    assert key == {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "gpt-oss-api-key", "key": "api-key"}}}
    assert "kubectl create secret generic gpt-oss-api-key" in text
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 1}
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    capacity = json.loads(run_cli("plan", "--json", *CASES["h100-120b-5000tps.yaml"][2:])[1])["capacity"]
    assert deployment["spec"]["replicas"] == capacity["replicas"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_amd_pods_ask_for_amd_gpus_in_the_rocm_image(run_cli):
    c = container(export(run_cli, *CASES["mi300x-120b.yaml"][2:])[1])
    assert c["resources"]["limits"] == {"amd.com/gpu": 1} and c["image"] == "rocm/vllm:latest"
    assert {"name": "VLLM_ROCM_USE_AITER", "value": "1"} in c["env"]


def test_llamacpp_copies_become_pods_of_one_gpu(run_cli):
    objects = export(run_cli, *CASES["2x-rtx3090-20b-copies.yaml"][2:])[1]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2 and container(objects)["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert container(objects)["command"] == ["/app/llama-server"]


@pytest.mark.parametrize("flags,said", [
    (["--format", "helm"], "choose one of kubernetes, compose"),
    (["--format", "kubernetes", "--backend", "ollama", "--hardware", str(fixture_path("cpu-only"))],
     "export runs vLLM and llama.cpp plans"),
    (["--format", "kubernetes", "--replicas", "2", "--target-tps", "100"], "give one"),
    (["--format", "kubernetes", "--name", "bad name"], "--name"),
    (["--format", "compose", "--replicas", "2"], "one node"),
])
def test_what_export_cannot_do_is_exit_2_with_the_fix(run_cli, flags, said):
    code, out, err = run_cli("export", *flags)
    assert code == 2 and out == "" and said in err


def test_without_pyyaml_export_exits_4_with_the_install_line():
    from test_missing_extras import gptoss_without

    result = gptoss_without("yaml", "export", "--format", "kubernetes", "--gpu", "H100", "--model", "120b")
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.strip().endswith("pip install 'gptoss-deploy[k8s]'")

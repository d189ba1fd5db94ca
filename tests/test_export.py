"""`gptoss export`: Kubernetes objects validate against Kubernetes' own schemas (offline), SkyPilot services parse
with SkyPilot's own reader, compose files have compose's shape; all run the plan's engine flags, never hold the API
key, and match their golden files."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gptoss_deploy.export.common import PORT, SAVED_CPU_PLAN_CPUS

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
    autoscaled = "--min-replicas" in CASES[case]
    workload = "LeaderWorkerSet" if "--nodes" in CASES[case] else "Deployment"
    [pods] = [o["spec"]["replicas"] * o["spec"].get("leaderWorkerTemplate", {}).get("size", 1) for o in objects
              if o["kind"] == workload]
    shared_claim = pods == 1 and not autoscaled          # several pods: a cache volume each (no ReadWriteMany)
    assert [o["kind"] for o in objects] == [*(["PersistentVolumeClaim"] if shared_claim else []), workload, "Service",
                                            "NetworkPolicy", *(["HorizontalPodAutoscaler"] if autoscaled else [])]
    for pod in pod_templates(objects):
        [cache] = [v for v in pod["volumes"] if v["name"] == "models"]
        claim = cache["persistentVolumeClaim"] if shared_claim else cache["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert shared_claim or claim["accessModes"] == ["ReadWriteOnce"]
    for obj in objects:
        if obj["kind"] == "LeaderWorkerSet":
            validate_leader_worker_set(obj)
        else:
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


# SkyPilot's own reader, what it understood of the file. SkyPilot lives in a directory of its own beside the test
# environment (the test command installs it there): it pins click below 8.2, which would hold huggingface_hub at 1.x
# here, not what users get. It writes under ~/.sky, so it runs with a home of its own.
SKYPILOT = Path(sys.prefix) / "skypilot"
SKY_READS = """
import json, sys, sky
for path in sys.argv[1:]:
    task = sky.Task.from_yaml(path)
    [resources] = task.resources
    print(json.dumps({"readiness": task.service.readiness_path, "delay": task.service.initial_delay_seconds,
                      "replicas": task.service.min_replicas, "accelerators": resources.accelerators,
                      "ports": resources.ports, "image": resources.image_id, "memory": resources.memory,
                      "secrets": [ref.name for ref in task.managed_secret_refs], "envs": task.envs, "run": task.run}))
"""
SKYPILOT_CASES = [c for c in CASES if CASES[c][1] == "skypilot"]


@pytest.fixture(scope="module")
def sky_read(tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """Each SkyPilot case's text and what SkyPilot's reader understood of it, read in one process (its import takes
    seconds)."""
    assert SKYPILOT.is_dir(), f"SkyPilot reads these files: pip install --target {SKYPILOT} skypilot"
    home = tmp_path_factory.mktemp("sky-home")
    texts = {}
    with golden_environment():
        for case in SKYPILOT_CASES:
            texts[case] = exported(case)
            (home / case).write_text(texts[case])
    result = subprocess.run([sys.executable, "-c", SKY_READS, *(str(home / case) for case in SKYPILOT_CASES)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(home), "PYTHONPATH": str(SKYPILOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    reads = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {case: (texts[case], read) for case, read in zip(SKYPILOT_CASES, reads, strict=True)}


@pytest.mark.parametrize("case", SKYPILOT_CASES)
def test_skypilot_reads_the_service_as_planned_and_it_matches_its_golden_file(case, sky_read):
    text, read = sky_read[case]
    document = yaml.safe_load(text)
    assert read["readiness"] == "/health" and read["ports"] == [str(PORT)]
    policy = document["service"].get("replica_policy", {"min_replicas": document["service"].get("replicas")})
    assert read["replicas"] == policy["min_replicas"] >= 1
    assert read["delay"] > 300                  # five minutes of warm-up and the time a first start downloads
    assert read["secrets"] == [k for k in document["secrets"]] and document["secrets"] == {
        k: None for k in document["secrets"]}                    # the key's name, never a value
    argv = shlex.split(read["run"])
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == str(PORT)
    assert read["image"]["null"].startswith("docker:")
    assert text == (EXPORT_DIR / case).read_text(), "refresh with tests/golden.py after a deliberate change"


def test_skypilot_asks_for_the_planned_gpus_by_skypilots_names(run_cli, tmp_path):
    documents = {case: yaml.safe_load(run_cli("export", *CASES[case])[1])
                 for case in CASES if CASES[case][1] == "skypilot"}
    assert documents["skypilot-h200-120b-5000tps.yaml"]["resources"]["accelerators"] == "H200:1"
    assert documents["skypilot-mi300x-120b.yaml"]["resources"]["accelerators"] == "MI300X:1"
    assert documents["skypilot-mi300x-120b.yaml"]["resources"]["image_id"] == "docker:vllm/vllm-openai-rocm:v0.33.0"
    copies = documents["skypilot-2x-rtx3090-20b-copies.yaml"]
    assert copies["resources"]["accelerators"] == "RTX3090:1" and copies["service"]["replicas"] == 2
    cpu = documents["skypilot-cpu-only-20b.yaml"]["resources"]
    assert "accelerators" not in cpu and cpu["memory"].endswith("+")
    code, out, _ = run_cli("plan", "--json", *CASES["skypilot-h200-120b-5000tps.yaml"][2:])
    assert documents["skypilot-h200-120b-5000tps.yaml"]["service"]["replicas"] == json.loads(out)["capacity"]["replicas"]


def test_autoscaling_scales_between_the_minimum_and_the_sized_count_on_the_planned_load(run_cli):
    flags = CASES["h100-120b-autoscale-1-to-5000tps.yaml"][2:]
    capacity = json.loads(run_cli("plan", "--json", *flags[:-2])[1])["capacity"]
    objects = export(run_cli, *flags)[1]
    [scaler] = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert scaler["spec"]["scaleTargetRef"]["name"] == "gpt-oss"
    assert (scaler["spec"]["minReplicas"], scaler["spec"]["maxReplicas"]) == (1, capacity["replicas"])
    [metric] = scaler["spec"]["metrics"]
    # vLLM's own gauge of its queue (/metrics): its running requests stop at the KV cache's room, its queue does not
    assert metric["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
    assert metric["pods"]["target"]["averageValue"] == "5"
    policy = yaml.safe_load(run_cli("export", *CASES["skypilot-h100-120b-autoscale-1-to-5000tps.yaml"])[1])[
        "service"]["replica_policy"]
    assert (policy["min_replicas"], policy["max_replicas"]) == (1, capacity["replicas"])
    assert policy["target_qps_per_replica"] == round(capacity["replica_tokens_per_s"] / 1024, 2)   # 1k-token answers


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


def closed(schema):
    """SCHEMA with unknown fields refused wherever it lists fields, as kubectl's strict field validation does."""
    if isinstance(schema, dict):
        schema = {k: closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    return schema


def validate_leader_worker_set(obj: dict) -> None:
    """Its own fields against the LeaderWorkerSet CRD's published schema; its pod templates against Kubernetes'."""
    schema = closed(json.loads((Path(__file__).parent / "fixtures" / "schemas" / "leaderworkerset-v1.json").read_text()))
    jsonschema.validate(obj, schema)
    template = obj["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": key.lower()},
                                      "template": template[key]}, KUBERNETES, strict=True)


def test_a_wrong_field_in_a_leader_worker_set_is_caught():
    """The check above can fail: a misspelt field and a pod template field Kubernetes does not know."""
    good = yaml.safe_load_all((EXPORT_DIR / "lws-2-nodes-of-2x-l4-120b.yaml").read_text())
    lws = next(o for o in good if o["kind"] == "LeaderWorkerSet")
    misspelt = json.loads(json.dumps(lws))
    misspelt["spec"]["leaderWorkerTemplate"]["sizes"] = 2
    with pytest.raises(jsonschema.ValidationError):
        validate_leader_worker_set(misspelt)
    bad_pod = json.loads(json.dumps(lws))
    bad_pod["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["cmd"] = ["x"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_leader_worker_set(bad_pod)


def test_a_plan_over_nodes_runs_ray_and_one_server_per_replica(run_cli):
    objects = export(run_cli, *CASES["lws-2-nodes-of-2x-l4-120b.yaml"][2:])[1]
    lws = next(o for o in objects if o["kind"] == "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert (lws["spec"]["replicas"], template["size"]) == (2, 2)
    leader, = template["leaderTemplate"]["spec"]["containers"]
    worker, = template["workerTemplate"]["spec"]["containers"]
    assert leader["command"] == worker["command"] == ["sh", "-c"]
    serve = shlex.split(leader["args"][0].split(" && exec ", 1)[1])
    assert serve[:3] == ["vllm", "serve", "openai/gpt-oss-120b"]
    assert serve[serve.index("--tensor-parallel-size") + 1] == "2"
    assert serve[serve.index("--pipeline-parallel-size") + 1] == "2"
    assert serve[serve.index("--distributed-executor-backend") + 1] == "ray"
    assert "ray start --address=$LWS_LEADER_ADDRESS:6379" in worker["args"][0]
    assert "readinessProbe" in leader and "readinessProbe" not in worker
    assert leader["resources"] == worker["resources"] and leader["resources"]["limits"]["nvidia.com/gpu"] == 2
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "leader"
    sky = yaml.safe_load(run_cli("export", *CASES["skypilot-2-nodes-of-2x-l4-120b.yaml"])[1])
    assert sky["num_nodes"] == 2 and sky["resources"]["accelerators"] == "L4:2"
    assert 'if [ "$SKYPILOT_NODE_RANK" = 0 ]' in sky["run"] and "--pipeline-parallel-size 2" in sky["run"]


def test_a_plan_over_nodes_does_not_run_here(run_cli, tmp_path):
    saved = tmp_path / "plan.json"
    saved.write_text(run_cli("plan", "--json", "--gpu", "L4:2", "--nodes", "2", "--model", "120b",
                             "--backend", "vllm")[1])
    code, out, err = run_cli("up", "--plan", str(saved), "--json")
    assert code != 0 and "spans 2 nodes" in err and "gptoss export --format kubernetes" in err


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
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    capacity = json.loads(run_cli("plan", "--json", *CASES["h100-120b-5000tps.yaml"][2:])[1])["capacity"]
    assert deployment["spec"]["replicas"] == capacity["replicas"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_amd_pods_ask_for_amd_gpus_in_the_rocm_image(run_cli):
    c = container(export(run_cli, *CASES["mi300x-120b.yaml"][2:])[1])
    assert c["resources"]["limits"]["amd.com/gpu"] == 1 and c["image"] == "vllm/vllm-openai-rocm:v0.33.0"
    assert {"name": "VLLM_ROCM_USE_AITER", "value": "1"} in c["env"]


def test_llamacpp_copies_become_pods_of_one_gpu(run_cli):
    objects = export(run_cli, *CASES["2x-rtx3090-20b-copies.yaml"][2:])[1]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2 and container(objects)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container(objects)["command"] == ["/app/llama-server"]


def test_llamacpp_pods_read_the_key_as_a_file_from_the_secret_in_the_build_of_the_engine_we_ship(run_cli):
    """No key variable (checkov CKV_K8S_35): llama-server's --api-key-file reads the Secret mounted read-only; the
    image is llama.cpp's package of the build xllamacpp embeds (its version ends in the build number)."""
    objects = export(run_cli, *CASES["cpu-only-20b.yaml"][2:])[1]
    c, [pod] = container(objects), list(pod_templates(objects))
    key_file = c["args"][c["args"].index("--api-key-file") + 1]
    [mount] = [m for m in c["volumeMounts"] if key_file.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert mount["readOnly"] and volume["secret"]["secretName"] == "gpt-oss-api-key"
    assert volume["secret"]["items"] == [{"key": "api-key", "path": key_file.rsplit("/", 1)[1]}]
    assert not any("API_KEY" in e["name"] for e in c["env"])
    assert c["image"] == f"ghcr.io/ggml-org/llama.cpp:server-b{version('xllamacpp').rsplit('.', 1)[1]}"


@pytest.mark.parametrize("flags,said", [
    (["--format", "helm"], "choose one of kubernetes, skypilot, compose"),
    (["--format", "kubernetes", "--backend", "ollama", "--hardware", str(fixture_path("cpu-only"))],
     "export runs vLLM and llama.cpp plans"),
    (["--format", "kubernetes", "--replicas", "2", "--target-tps", "100"], "give one"),
    (["--format", "kubernetes", "--name", "bad name"], "--name"),
    (["--format", "compose", "--replicas", "2"], "one node"),
    (["--format", "compose", "--min-replicas", "1"], "one node"),
    (["--format", "compose", "--gpu", "L4:2", "--nodes", "2", "--model", "120b", "--backend", "vllm"], "spans 2"),
    (["--format", "kubernetes", "--nodes", "2"], "--nodes counts nodes of the --gpu kind"),
    (["--format", "kubernetes", "--gpu", "L4:2", "--nodes", "2", "--model", "120b", "--backend", "vllm",
      "--replicas", "2", "--min-replicas", "1"], "autoscaling a replica of several nodes"),
    (["--format", "kubernetes", "--gpu", "H100", "--replicas", "2", "--min-replicas", "3"], "above the 2 replica(s)"),
    (["--format", "kubernetes", "--hardware", str(fixture_path("cpu-only")), "--model", "20b", "--min-replicas", "1"],
     "llama.cpp's metrics need its API key"),
    (["--format", "compose", "--gpu", "H100", "--image", "vllm/vllm-openai\nprivileged: true"],
     "is not an image reference"),
    (["--format", "kubernetes", "--hardware", str(fixture_path("apple-m2-16gb")), "--image", "registry.example/l:1"],
     "a container cannot use the Apple M2"),        # was `null: 1` as the pod's GPU resource
])
def test_what_export_cannot_do_is_exit_2_with_the_fix(run_cli, flags, said):
    code, out, err = run_cli("export", *flags)
    assert code == 2 and out == "" and said in err


def test_without_pyyaml_export_exits_4_with_the_install_line():
    from test_missing_extras import gptoss_without

    result = gptoss_without("yaml", "export", "--format", "kubernetes", "--gpu", "H100", "--model", "120b")
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.strip().endswith("pip install 'gptoss-deploy[k8s]'")


@pytest.mark.parametrize("flag", [["--target-tps", "5000"], ["--min-replicas", "1"]])
def test_a_saved_plan_cannot_be_sized_since_it_holds_no_node(run_cli, tmp_path, flag):
    saved = tmp_path / "plan.json"
    saved.write_text(run_cli("plan", "--json", "--gpu", "H100", "--model", "120b")[1])
    code, out, err = run_cli("export", "--format", "kubernetes", "--plan", str(saved), *flag)
    assert code == 2 and out == "" and f"{flag[0]} sizes replicas of a node: give --gpu or --hardware" in err


def tampered(run_cli, tmp_path, change, *plan_flags: str) -> Path:
    plan = json.loads(run_cli("plan", "--json", *plan_flags)[1])
    change(plan["launch"])
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    return saved


CPU_PLAN = ("--hardware", str(fixture_path("cpu-only")))
H100_PLAN = ("--gpu", "H100", "--model", "120b")


@pytest.mark.parametrize("export_format", ["kubernetes", "compose", "skypilot"])
@pytest.mark.parametrize("plan_flags, change, said", [
    (CPU_PLAN, lambda launch: launch["argv"].extend(["--rpc", "evil.example:50052"]),
     "the plan's launch.argv has a flag gptoss does not plan: '--rpc'"),
    (CPU_PLAN, lambda launch: launch["env"].update(LD_PRELOAD="/tmp/evil.so"),
     "the plan's launch.env sets LD_PRELOAD='/tmp/evil.so', which gptoss does not plan"),
    (H100_PLAN, lambda launch: launch["argv"].extend(["--trust-remote-code"]),
     "the plan's launch.argv has a flag gptoss does not plan: '--trust-remote-code'"),
])
def test_a_saved_plan_with_what_gptoss_never_plans_is_refused_as_up_refuses_it(run_cli, tmp_path, export_format,
                                                                               plan_flags, change, said):
    saved = tampered(run_cli, tmp_path, change, *plan_flags)
    assert run_cli("up", "--plan", saved, "--dry-run")[0] == 2
    code, out, err = run_cli("export", "--format", export_format, "--plan", saved)
    assert code == 2 and out == "" and said in err


def test_a_saved_plan_without_host_or_port_exports_listening_for_the_cluster(run_cli, tmp_path):
    def drop_address(launch):
        for flag in ("--host", "--port"):
            at = launch["argv"].index(flag)
            del launch["argv"][at:at + 2]
    _, objects = export(run_cli, "--plan", str(tampered(run_cli, tmp_path, drop_address, *CPU_PLAN)))
    args = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0" and args[args.index("--port") + 1] == str(PORT)


@pytest.mark.parametrize("flags", [CPU_PLAN, H100_PLAN])
def test_compose_probes_the_port_it_serves_and_keeps_the_hosts_ipc_to_itself(run_cli, flags):
    code, out, err = run_cli("export", "--format", "compose", *flags)
    assert code == 0, err
    [service] = yaml.safe_load(out)["services"].values()
    probe = " ".join(service["healthcheck"]["test"])
    assert f"localhost:{PORT}/health" in probe and "8080" not in probe
    assert "ipc" not in service and service["shm_size"]


def test_vllm_runs_the_release_its_flags_were_checked_against(run_cli):
    _, objects = export(run_cli, *H100_PLAN)
    image = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "vllm/vllm-openai:v0.33.0"


@pytest.mark.parametrize("hardware, asked", [("t4-cloud-vm", "T4:1"), ("mi300x", "MI300X:1")])
def test_skypilot_names_a_probed_gpu_as_its_catalog_does(run_cli, hardware, asked):
    """The driver's names ("Tesla T4", amd-smi's "Aqua Vanjaram [Instinct MI300X]") are not SkyPilot's: its reader
    accepts any name, so only a launch would have failed."""
    code, out, err = run_cli("export", "--format", "skypilot", "--hardware", fixture_path(hardware))
    assert code == 0, err
    assert yaml.safe_load(out)["resources"]["accelerators"] == asked


@pytest.mark.parametrize("machine,named", [("laptop-rtx4060-8gb", "NVIDIA GeForce RTX 4060 Laptop GPU"),
                                           ("radeon-7900xtx", "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]")])
def test_a_gpu_skypilots_catalog_does_not_offer_is_refused_before_a_launch_would_fail(run_cli, machine, named):
    """SkyPilot's offline reader takes any accelerator name; no cloud offers these, so only `sky serve up` would
    fail: the export says so, exit 2."""
    code, out, err = run_cli("export", "--format", "skypilot", "--hardware", fixture_path(machine), "--model", "20b")
    assert code == 2 and out == "" and f"SkyPilot's catalog offers no {named}" in err
    assert run_cli("export", "--format", "kubernetes", "--hardware", fixture_path(machine), "--model", "20b")[0] == 0


def pod_templates(objects: list[dict]) -> list[dict]:
    """Every pod a workload runs: a Deployment's template, a LeaderWorkerSet's leader and worker templates."""
    for o in objects:
        if o["kind"] == "Deployment":
            yield o["spec"]["template"]["spec"]
        elif o["kind"] == "LeaderWorkerSet":
            template = o["spec"]["leaderWorkerTemplate"]
            yield from (template["leaderTemplate"]["spec"], template["workerTemplate"]["spec"])


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] == "kubernetes"])
def test_every_pod_asks_for_its_cpus_and_memory_and_runs_without_privileges(case):
    """What a namespace with quotas and Pod Security `restricted` needs; an image that must run as root (ROCm's
    device groups) says why in the file's header."""
    with golden_environment():
        text = exported(case)
    objects = list(yaml.safe_load_all(text))
    for pod in pod_templates(objects):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        [c] = pod["containers"]
        security = c["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        if "mi300x" in case:
            assert "runAsNonRoot" not in security and "runs as root, since AMD GPUs' device" in text
        else:
            assert security["runAsNonRoot"] is True and security["runAsUser"] > 0
            assert pod["securityContext"]["fsGroup"] == security["runAsUser"]       # the cache volume is its own
            assert "runs as root" not in text
        asked = c["resources"]["requests"]
        assert set(asked) == {"cpu", "memory"} and {k: c["resources"]["limits"][k] for k in asked} == asked


# checkov, the infrastructure scanner, in a directory of its own (the test command installs it there): its pins
# would hold this environment's packages back.
CHECKOV = Path(sys.prefix) / "checkov"


def checkov(directory: Path) -> dict:
    """checkov's Kubernetes findings on the files in DIRECTORY: failed and skipped checks, by file."""
    assert CHECKOV.is_dir(), f"checkov scans these files: pip install --target {CHECKOV} checkov"
    result = subprocess.run([sys.executable, "-m", "checkov.main", "-d", str(directory), "--framework", "kubernetes",
                             "--compact", "-o", "json"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(CHECKOV), "HOME": str(directory)})
    report = json.loads(result.stdout)["results"]
    return {kind: [(Path(c["file_path"]).name, c["check_id"], c["check_result"].get("suppress_comment", ""))
                   for c in report.get(kind, [])] for kind in ("failed_checks", "skipped_checks")}


def scanned_as_checkov_reads_them(objects: list[dict]) -> list[dict]:
    """OBJECTS, with each LeaderWorkerSet's pod templates as Pods (checkov does not know LeaderWorkerSet), carrying
    its waivers."""
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{o['metadata']['name']}-{role}",
                                                              "annotations": o["metadata"]["annotations"]},
             "spec": o["spec"]["leaderWorkerTemplate"][f"{role}Template"]["spec"]}
            for o in objects if o["kind"] == "LeaderWorkerSet" for role in ("leader", "worker")]
    return [*objects, *pods]


@pytest.mark.long
def test_checkov_finds_nothing_in_the_kubernetes_exports_but_what_each_file_waives_with_its_reason(tmp_path):
    """Each export scanned by checkov: no failed check; what remains (root on ROCm, vLLM's key variable and
    writable HOME, a tag rather than a digest, the namespace) is waived in the file with its reason, and the same
    objects without their waivers fail exactly the checks waived."""
    waived = {}
    with golden_environment():
        for case in (c for c in CASES if CASES[c][1] == "kubernetes"):
            objects = scanned_as_checkov_reads_them(list(yaml.safe_load_all(exported(case))))
            (tmp_path / case).write_text(yaml.safe_dump_all(objects))
            for o in objects:
                waived[case] = waived.get(case, set()) | {
                    v.split("=", 1)[0] for k, v in o["metadata"].pop("annotations", {}).items()
                    if k.startswith("checkov.io/skip")}
            (tmp_path / f"bare-{case}").write_text(yaml.safe_dump_all(objects))
    found = checkov(tmp_path)
    assert [f for f in found["failed_checks"] if not f[0].startswith("bare-")] == []
    for case, checks in waived.items():
        assert {check for name, check, _ in found["failed_checks"] if name == f"bare-{case}"} == checks, case
        assert {check for name, check, _ in found["skipped_checks"] if name == case} == checks, case
    reasons = {reason for name, _, reason in found["skipped_checks"]}
    assert all(len(reason) > 30 for reason in reasons), reasons
    assert {"CKV_K8S_23", "CKV_K8S_40"} <= waived["mi300x-120b.yaml"]             # ROCm's devices: root
    assert {"CKV_K8S_23", "CKV_K8S_35", "CKV_K8S_22"}.isdisjoint(waived["cpu-only-20b.yaml"])   # llama.cpp needs none


def test_a_cpu_plans_pod_asks_for_the_cores_and_ram_it_was_planned_on_and_its_engine_uses_them(run_cli, tmp_path):
    machine = fixture_path("cpu-only-64core")
    plan = json.loads(run_cli("plan", "--json", "--hardware", machine)[1])
    cores = json.loads(machine.read_text())["cpu"]["physical_cores"]
    assert cores != SAVED_CPU_PLAN_CPUS
    c = container(export(run_cli, "--hardware", machine)[1])
    asked = c["resources"]["requests"]
    assert asked["cpu"] == str(cores) and int(asked["memory"].removesuffix("Gi")) * 2**30 > plan["memory"]["cpu_bytes"]
    assert {"name": "LLAMA_ARG_THREADS", "value": str(cores)} in c["env"]       # not the node's own core count
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    c = container(export(run_cli, "--plan", saved)[1])
    assert c["resources"]["requests"]["cpu"] == str(SAVED_CPU_PLAN_CPUS)         # a saved plan omits its cores


def test_the_startup_allowance_counts_one_copy_of_the_weights_not_each_data_parallel_copy(run_cli):
    """Eight copies of 120b on 8 H100s download it once and load side by side: a pod that never starts is
    restarted after one copy's download and load, not eight (3 h 9 min)."""
    objects = export(run_cli, "--gpu", "H100:8", "--model", "120b")[1]
    probe = container(objects)["startupProbe"]
    one = json.loads(run_cli("plan", "--json", "--gpu", "H100", "--model", "120b")[1])
    assert container(export(run_cli, "--gpu", "H100", "--model", "120b")[1])["startupProbe"] == probe
    assert probe["failureThreshold"] * probe["periodSeconds"] < 3600 and one["offload"]["data_parallel_size"] == 1


def test_a_saved_plan_asks_for_the_gpus_of_its_maker_read_from_the_gpus_name(run_cli, tmp_path):
    """A saved plan keeps GPU names, not vendors: "Tesla T4" was exported as an AMD GPU in ROCm's image."""
    for machine, resource, image in (("t4-cloud-vm", "nvidia.com/gpu", "server-cuda"),
                                     ("mi300x", "amd.com/gpu", "rocm")):
        saved = tmp_path / f"{machine}.json"
        saved.write_text(run_cli("plan", "--json", "--hardware", fixture_path(machine))[1])
        c = container(export(run_cli, "--plan", saved)[1])
        assert resource in c["resources"]["limits"] and image in c["image"], machine
    plan = json.loads((tmp_path / "mi300x.json").read_text())
    for device in plan["memory"]["devices"]:
        device["name"] = "Mystery Accelerator 9000" if device["device"] != "cpu" else device["name"]
    (tmp_path / "odd.json").write_text(json.dumps(plan))
    code, out, err = run_cli("export", "--format", "kubernetes", "--plan", tmp_path / "odd.json")
    assert code == 2 and "none gptoss knows the maker of" in err

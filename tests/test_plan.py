"""The planner, table-driven over recorded hardware: what an expert would pick, and never more than is free."""
from __future__ import annotations

import json

import pytest

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.planner.constraints import as_flags
from gptoss_deploy.planner.errors import NoFitError, UsageError
from gptoss_deploy.planner.gpus import node_from_spec
from gptoss_deploy.planner.hardware import load_hardware
from gptoss_deploy.planner.plan import plan

from helpers import HARDWARE_FIXTURES, constraints, fixture_path, plan_for

PROFILES = ["auto", "laptop", "workstation", "server"]


@pytest.mark.parametrize(
    "fixture,profile,model,backend",
    [
        ("rtx4090-desktop", "auto", "gpt-oss-120b", "llamacpp"),      # 64 GB RAM holds the experts
        ("rtx4090-desktop", "laptop", "gpt-oss-120b", "llamacpp"),
        ("laptop-rtx4060-8gb", "laptop", "gpt-oss-20b", "llamacpp"),
        ("apple-m2-16gb", "laptop", "gpt-oss-20b", "llamacpp"),
        ("apple-m4max-128gb", "workstation", "gpt-oss-120b", "llamacpp"),
        # vLLM holds ~47k tokens of KV cache beside 120b on one H100 (vllm#27508): the profile's 128k is llama.cpp's
        ("h100-sxm", "server", "gpt-oss-120b", "llamacpp"),
        ("h100-sxm", "auto", "gpt-oss-120b", "vllm"),               # datacenter class picks vLLM by itself
        ("2x-a100-40gb", "server", "gpt-oss-120b", "llamacpp"),      # vLLM's own memory leaves no KV cache here
        ("2x-rtx3090", "workstation", "gpt-oss-120b", "llamacpp"),
        ("cpu-only", "laptop", "gpt-oss-20b", "llamacpp"),
        ("t4-cloud-vm", "auto", "gpt-oss-20b", "llamacpp"),
        ("cpu-only-2core", "auto", "gpt-oss-20b", "llamacpp"),      # slow, but local beats an unasked cloud
        ("dgx-spark-gb10", "auto", "gpt-oss-120b", "llamacpp"),     # NVML has no memory for it: unified RAM
    ],
)
def test_auto_picks_what_an_expert_would(fixture, profile, model, backend):
    doc = plan_for(fixture, profile).to_json()
    assert (doc["model"], doc["backend"]) == (model, backend)
    assert doc["reasons"] and doc["binding_constraint"]


# The machine classes of issue 10: the plan an expert would pick there, and the reasons it must state.
MACHINE_CLASSES = [
    ("dgx-spark-gb10", "gpt-oss-120b", "llamacpp", "ok", ["unified memory GPU: 1 x NVIDIA GB10", "of which the GPU may use"]),
    ("strix-halo-128gb", "gpt-oss-120b", "llamacpp", "ok", ["unified memory GPU: 1 x Strix Halo", "predicted at 47"]),
    ("mi300x", "gpt-oss-120b", "vllm", "ok", ["one Aqua Vanjaram [Instinct MI300X] holds the whole model"]),
    ("radeon-7900xtx", "gpt-oss-120b", "llamacpp", "ok", ["--n-cpu-moe 26: the MoE experts of 26 of 36 layers"]),
    ("2x-h100", "gpt-oss-120b", "vllm", "ok", ["--data-parallel-size 2: the other GPUs serve copies"]),
    ("8x-h100", "gpt-oss-120b", "vllm", "ok", ["--data-parallel-size 8", "over 4 streams"]),
    ("cpu-only-2core", "gpt-oss-20b", "llamacpp", "degraded",
     ["below profile auto's 15 tok/s floor; faster: gpt-oss-120b on AWS Bedrock ($0.15 / $0.60", "capped from 32,768"]),
    ("cpu-only-16core", "gpt-oss-20b", "llamacpp", "ok",
     ["no GPU here", "gpt-oss-120b on llamacpp needs 63.0 GiB of RAM", "capped from 32,768"]),
    ("cpu-only-64core", "gpt-oss-120b", "llamacpp", "ok", ["no GPU here", "predicted at 52 tok/s", "over 60 s"]),
]


def test_llamacpp_copies_a_model_that_fits_one_gpu_and_splits_one_that_does_not():
    copies = plan_for("2x-rtx3090", model="20b").to_json()
    assert copies["offload"]["data_parallel_size"] == 2 and "--tensor-split" not in copies["launch"]["argv"]
    assert [d["device"] for d in copies["memory"]["devices"]] == ["gpu0", "gpu1", "cpu"]
    assert copies["predicted"]["aggregate_tokens_per_s"] > 1.5 * copies["predicted"]["decode_tokens_per_s"]
    assert any("each of 2 GPUs holds the whole model" in r for r in copies["reasons"])
    split = plan_for("2x-rtx3090", "workstation").to_json()                   # 120b: experts in RAM, split
    assert split["offload"]["data_parallel_size"] == 1 and "--tensor-split" in split["launch"]["argv"]
    assert any("--n-cpu-moe" in r for r in split["reasons"])


@pytest.mark.parametrize("fixture,model,backend,status,said", MACHINE_CLASSES)
def test_each_machine_class_gets_the_expert_plan_and_says_why(fixture, model, backend, status, said):
    doc = plan_for(fixture).to_json()
    assert (doc["model"], doc["backend"], doc["status"]) == (model, backend, status)
    reasons = " | ".join(doc["reasons"])
    for words in said:
        assert words in reasons


@pytest.mark.parametrize("fixture", HARDWARE_FIXTURES)
@pytest.mark.parametrize("profile", PROFILES)
def test_never_plans_more_memory_than_is_free(fixture, profile):
    try:
        result = plan_for(fixture, profile)
    except NoFitError:
        return
    for candidate in (result.chosen, *result.alternatives):
        if candidate.placement:
            for device in candidate.placement.devices:
                assert device.needed_bytes <= device.available_bytes, (candidate.backend, device)


@pytest.mark.parametrize("fixture", HARDWARE_FIXTURES)
def test_plan_is_deterministic(fixture):
    assert json.dumps(plan_for(fixture).to_json()) == json.dumps(plan_for(fixture).to_json())


def test_full_gpu_fit_offloads_nothing_and_predicts_the_calibrated_speed():
    doc = plan_for("rtx4090-desktop", model="20b").to_json()
    assert doc["offload"]["n_cpu_moe"] == 0
    assert "--n-cpu-moe" not in doc["launch"]["argv"]
    assert doc["predicted"]["decode_tokens_per_s"] == pytest.approx(222, rel=0.05)   # G15396 measured 221.95


def test_small_gpu_gets_the_smallest_expert_offload_that_fits():
    result = plan_for("laptop-rtx4060-8gb", "laptop")
    n = result.chosen.placement.cpu_layers
    argv = result.chosen.launch.argv
    assert 0 < n < 24
    assert argv[argv.index("--n-cpu-moe") + 1] == str(n)
    assert result.binding_constraint.startswith("GPU memory")
    # one layer fewer in RAM would not fit the GPU
    gpu = result.chosen.placement.devices[0]
    per_layer = result.chosen.placement.artifact.expert_bytes_per_layer(result.chosen.placement.model)
    assert gpu.needed_bytes + per_layer > gpu.available_bytes


def test_120b_with_every_expert_in_ram_runs_on_an_8_gb_gpu_as_the_guide_says(tmp_path):
    """G15396: "120b with all experts on CPU needs ~8 GB VRAM" (gptoss-facts.md), given the RAM for them."""
    laptop = json.loads(fixture_path("laptop-rtx4060-8gb").read_text())
    laptop["memory"] = {"total_bytes": 96 * 2**30, "available_bytes": 90 * 2**30}
    (tmp_path / "hw.json").write_text(json.dumps(laptop))
    result = plan(load_hardware(tmp_path / "hw.json"), constraints(flags={"model": "120b"}), REGISTRY)
    placement = result.chosen.placement
    assert result.chosen.backend == "llamacpp" and placement.cpu_layers == placement.model.layers
    gpu = placement.devices[0]
    assert gpu.used_bytes < 8e9 and gpu.fits


def test_llamacpp_command_has_the_flags_that_matter():
    argv = plan_for("rtx4090-desktop", model="20b", context="65536").chosen.launch.argv
    assert argv[:3] == ["llama-server", "-hf", "ggml-org/gpt-oss-20b-GGUF"]
    assert argv[argv.index("--ctx-size") + 1] == "65536"
    assert "--jinja" in argv and argv[argv.index("--flash-attn") + 1] == "on"
    assert argv[argv.index("-ub") + 1] == "2048"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


def test_cpu_only_machine_gets_a_cpu_plan():
    doc = plan_for("cpu-only", "laptop").to_json()
    argv = doc["launch"]["argv"]
    assert argv[argv.index("--n-gpu-layers") + 1] == "0"
    assert "--flash-attn" not in argv and "--n-cpu-moe" not in argv
    assert doc["memory"]["gpu_bytes"] == 0
    assert 5 < doc["predicted"]["decode_tokens_per_s"] < 30


def test_a_thread_count_given_to_llama_server_is_what_its_cpu_plan_predicts_for(monkeypatch):
    every_core = plan_for("cpu-only-16core", backend="llamacpp", context=16384).to_json()
    monkeypatch.setenv("LLAMA_ARG_THREADS", "4")       # llama-server's own variable: the server it starts inherits it
    four = plan_for("cpu-only-16core", backend="llamacpp", context=16384).to_json()
    assert four["memory"] == every_core["memory"] and four["launch"] == every_core["launch"]
    assert four["predicted"]["prefill_tokens_per_s"] == pytest.approx(every_core["predicted"]["prefill_tokens_per_s"]
                                                                      / 4, rel=0.01)     # compute: a quarter of it
    assert four["predicted"]["decode_tokens_per_s"] < every_core["predicted"]["decode_tokens_per_s"] / 2
    assert "threads: llama-server runs 4 of this machine's 16 cores (LLAMA_ARG_THREADS=4): its CPU work is " \
           "predicted for 4" in four["reasons"]
    assert not any(r.startswith("threads:") for r in every_core["reasons"])
    monkeypatch.setenv("LLAMA_ARG_THREADS", "64")      # more threads than cores: the cores bound it
    assert plan_for("cpu-only-16core", backend="llamacpp", context=16384).to_json()["predicted"] == every_core["predicted"]


def test_a_thread_count_that_is_not_a_number_is_exit_2_naming_the_variable(run_cli, monkeypatch):
    monkeypatch.setenv("LLAMA_ARG_THREADS", "all")
    code, out, err = run_cli("plan", "--hardware", fixture_path("cpu-only-16core"), prog="gptoss-plan")
    assert code == 2
    assert err.strip().splitlines() == ["gptoss: error: LLAMA_ARG_THREADS='all': a number of threads, 1 or more, or unset"]


def test_vllm_on_one_h100_runs_the_recipes_flags_at_the_context_its_kv_cache_holds():
    """120b on one H100 needs --gpu-memory-utilization 0.95 --max-num-batched-tokens 1024 (VR), and even then vLLM
    finds 1.71 GiB for its KV cache (vllm#27508): not the profile's 128k, and the plan says so."""
    doc = plan_for("h100-sxm", "server", backend="vllm").to_json()
    argv = doc["launch"]["argv"]
    assert argv[:3] == ["vllm", "serve", "openai/gpt-oss-120b"]
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.95"
    assert argv[argv.index("--max-num-batched-tokens") + 1] == "1024"
    assert 32768 <= int(argv[argv.index("--max-model-len") + 1]) < 65536
    assert argv[argv.index("--tensor-parallel-size") + 1] == "1"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert doc["status"] == "degraded"
    assert any(r.startswith("context: reduced from 131,072") and "KV cache" in r for r in doc["reasons"])


def test_gpus_that_cannot_hold_120b_alone_serve_it_with_tensor_parallel_2():
    hw = load_hardware(fixture_path("2x-h100"))
    busy = hw.model_copy(update={"gpus": [g.model_copy(update={"memory_free_bytes": 60 * 1024**3}) for g in hw.gpus]})
    doc = plan(busy, constraints("server"), REGISTRY).to_json()
    assert doc["backend"] == "vllm"
    assert (doc["offload"]["tensor_parallel_size"], doc["offload"]["data_parallel_size"]) == (2, 1)
    assert any("--tensor-parallel-size 2: one NVIDIA H100 80GB HBM3 cannot hold the model" in r
               for r in doc["reasons"])


def test_two_40gb_gpus_leave_vllm_no_room_for_120b_and_say_so():
    """64.4 GiB of weights and vLLM's own ~9.6 GiB (vllm#27508) over two 40 GB A100s leave no KV cache."""
    result = plan_for("2x-a100-40gb", "server")
    assert (result.chosen.backend, result.chosen.model.size) == ("llamacpp", "120b")
    assert any(r.backend == "vllm" and r.model.size == "120b" and "GPU memory" in r.reason for r in result.rejected)


def argv_value(doc: dict, flag: str) -> str:
    argv = doc["launch"]["argv"]
    return argv[argv.index(flag) + 1]


def test_vllm_serves_the_model_under_both_of_its_names():
    argv = plan_for("h100-sxm", "auto").to_json()["launch"]["argv"]
    names = argv[argv.index("--served-model-name") + 1:argv.index("--host")]
    assert names == ["gpt-oss-120b", "openai/gpt-oss-120b"]


def test_hopper_tensor_parallel_stays_below_095_utilization():
    """'When running TP2 on H100, set your gpu memory utilization below 0.95' (VR)."""
    hw = load_hardware(fixture_path("2x-h100"))
    small = hw.model_copy(update={"gpus": [g.model_copy(update={"memory_free_bytes": 45 * 1024**3}) for g in hw.gpus]})
    doc = plan(small, constraints("server", {"model": "120b"}), REGISTRY).to_json()
    assert doc["offload"]["tensor_parallel_size"] == 2 and float(argv_value(doc, "--gpu-memory-utilization")) < 0.95


def test_blackwell_gets_the_recipes_fp8_kv_cache_and_no_variable_vllm_has_dropped():
    """vLLM 0.33 no longer knows VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8 (vllm.envs; tests/upstream/check_vllm.py): it
    picks FlashInfer's MXFP4 MoE on Blackwell by itself."""
    doc = plan_for("b200", "server").to_json()
    assert doc["launch"]["env"] == {}
    assert argv_value(doc, "--kv-cache-dtype") == "fp8"


@pytest.mark.parametrize("fixture", ["h100-sxm", "b200", "2x-h100", "2 nodes of 2x L4"])
def test_vllm_plans_leave_async_scheduling_to_vllm(fixture):
    """vLLM schedules asynchronously by default and turns it off where it cannot (a pipeline over nodes, where an
    explicit --async-scheduling failed: GPUStack#3836): no plan asks for it."""
    hw = node_from_spec("L4:2", 2) if fixture == "2 nodes of 2x L4" else load_hardware(fixture_path(fixture))
    doc = plan(hw, constraints("server", {"backend": "vllm", "model": "120b"}), REGISTRY).to_json()
    assert doc["backend"] == "vllm" and "--async-scheduling" not in doc["launch"]["argv"]


def test_instinct_gets_the_recipes_rocm_flags():
    doc = plan_for("mi300x", "server").to_json()
    assert doc["backend"] == "vllm" and doc["launch"]["env"]["VLLM_ROCM_USE_AITER"] == "1"
    assert argv_value(doc, "--attention-backend") == "ROCM_AITER_UNIFIED_ATTN"
    assert argv_value(doc, "--block-size") == "64"


def test_mi355x_serves_amds_fp8_activation_checkpoint_of_120b():
    hw = load_hardware(fixture_path("mi300x"))
    mi355 = hw.model_copy(update={"gpus": [hw.gpus[0].model_copy(update={
        "name": "AMD Instinct MI355X", "compute_capability": "gfx950", "memory_total_bytes": 309 * 10**9,
        "memory_free_bytes": 300 * 10**9})]})
    doc = plan(mi355, constraints("server", {"model": "120b"}), REGISTRY).to_json()
    assert doc["launch"]["argv"][2] == "amd/gpt-oss-120b-w-mxfp4-a-fp8"


def test_ada_is_not_routed_to_vllm_first_but_can_be_asked_for():
    auto = plan_for("l40s", "server").to_json()
    assert auto["backend"] == "llamacpp"
    asked = plan_for("l40s", "server", backend="vllm").to_json()
    assert asked["backend"] == "vllm"
    assert any("work in progress" in r for r in asked["reasons"])


def test_vllm_refuses_radeon_and_strix_halo_where_its_moe_kernels_are_missing():
    for fixture in ("radeon-7900xtx", "strix-halo-128gb"):
        with pytest.raises(NoFitError, match="recipe runs AMD Instinct MI300/MI355 and Radeon AI PRO R9700"):
            plan_for(fixture, backend="vllm")


def test_spare_gpus_serve_copies_of_the_model_and_raise_the_aggregate_not_the_single_stream():
    one, two, eight = (plan_for(f, "server", context="32768").to_json() for f in ("h100-sxm", "2x-h100", "8x-h100"))
    assert [d["offload"]["data_parallel_size"] for d in (one, two, eight)] == [1, 2, 8]
    assert all(d["offload"]["tensor_parallel_size"] == 1 for d in (one, two, eight))
    assert argv_value(eight, "--data-parallel-size") == "8" and "--data-parallel-size" not in one["launch"]["argv"]
    assert one["predicted"]["decode_tokens_per_s"] == eight["predicted"]["decode_tokens_per_s"]
    aggregates = [d["predicted"]["aggregate_tokens_per_s"] for d in (one, two, eight)]
    assert aggregates[0] < aggregates[1] < aggregates[2]
    assert len(eight["memory"]["devices"]) == 8
    assert any("--data-parallel-size 8" in r and "holds the whole model" in r for r in eight["reasons"])


def test_vllm_that_cannot_hold_the_model_says_what_is_missing_and_what_works():
    with pytest.raises(NoFitError) as err:
        plan_for("2x-rtx3090", model="120b", backend="vllm")
    message = err.value.message
    assert "gpt-oss-120b on vllm needs" in message
    assert "47.2 GiB free on 2 GPUs" in message
    assert "Instead: gpt-oss-120b on llamacpp fits (drop --backend)" in message


def test_vllm_refuses_pre_ampere_gpus():
    with pytest.raises(NoFitError, match="older than Ampere"):
        plan_for("t4-cloud-vm", backend="vllm")


def test_full_context_outranks_backend_preference():
    result = plan_for("h100-sxm", "server")     # vLLM holds ~47k of the profile's 128k beside 120b (vllm#27508)
    assert (result.chosen.backend, result.chosen.placement.context_length) == ("llamacpp", 131072)
    vllm = next(a for a in result.alternatives if a.backend == "vllm" and a.model.size == "120b")
    assert "shorter context" in result.to_json()["alternatives"][result.alternatives.index(vllm)]["lost_because"]


def test_less_free_memory_means_shorter_context_and_says_so():
    hw = load_hardware(fixture_path("h100-sxm"))
    busy = hw.model_copy(update={"gpus": [hw.gpus[0].model_copy(update={"memory_free_bytes": 20 * 1024**3})]})
    result = plan(busy, constraints("server", {"backend": "vllm", "model": "20b"}), REGISTRY)
    assert 4096 <= result.chosen.placement.context_length < 131072
    assert result.chosen.status == "degraded"
    assert any("reduced from 131,072" in r for r in result.reasons)


def test_apple_uses_the_metal_working_set_and_suggests_raising_it():
    result = plan_for("apple-m2-16gb", "laptop")
    gpu = result.chosen.placement.devices[0]
    assert gpu.available_bytes == int(16 * 1024**3 * 2 / 3)         # the working set, not the 16 GiB
    assert result.chosen.placement.cpu_layers > 0
    assert any("sudo sysctl iogpu.wired_limit_mb=" in r for r in result.reasons)


def test_cloud_is_planned_when_nothing_local_fits_and_cloud_is_allowed_with_price():
    doc = plan_for("cpu-only", model="120b", cloud=True).to_json()
    assert doc["status"] == "cloud" and doc["backend"] == "bedrock"
    assert doc["launch"]["api"]["model_id"] == "openai.gpt-oss-120b-1:0"
    assert doc["price"]["usd_per_1m_output_tokens"] == 0.60
    assert "argv" not in doc["launch"]


@pytest.mark.parametrize("profile, flags, env, hints", [
    ("auto", {"model": "120b"}, {}, ["fits (drop --model)", "billed: gpt-oss-120b on bedrock (add --cloud)"]),
    ("auto", {"model": "120b", "local_only": True}, {}, ["(drop --local and add --cloud)"]),
    ("auto", {"model": "120b", "backend": "llamacpp"}, {}, ["(drop --backend and add --cloud)"]),
    ("laptop", {"model": "120b"}, {}, ["(--cloud, over profile laptop's local_only)"]),
    ("auto", {}, {"GPTOSS_MODEL": "120b", "GPTOSS_LOCAL": "1"},
     ["fits (unset GPTOSS_MODEL)", "(unset GPTOSS_LOCAL and add --cloud)"]),
])
def test_a_billed_service_is_never_planned_without_consent_and_the_refusal_names_the_choices(profile, flags, env,
                                                                                           hints):
    """Only the cloud fits: exit 3 with the choices, each hint in the words of where the user's setting came from."""
    hardware = load_hardware(fixture_path("cpu-only"))
    with pytest.raises(NoFitError) as err:
        plan(hardware, constraints(profile, flags, env), REGISTRY)
    assert all(hint in err.value.message for hint in hints), err.value.message
    flags_named = {"--model", "--local", "--backend"} - {f"--{k.replace('_only', '')}" for k in flags}
    assert not any(f"drop {flag}" in err.value.message for flag in flags_named)   # never a flag nobody passed


@pytest.mark.parametrize("profile, flags", [("aws", {}), ("auto", {"backend": "bedrock", "model": "120b"}),
                                            ("auto", {"model": "120b", "cloud": True})])
def test_a_cloud_profile_backend_or_cloud_flag_is_consent(profile, flags):
    assert plan_for("cpu-only", profile, **flags).chosen.status == "cloud"


def test_nodes_of_gpus_outside_the_vllm_recipe_plan_vllm_without_asking():
    from gptoss_deploy.planner.gpus import node_from_spec

    nodes = plan(node_from_spec("L4:2", 2), constraints("auto", {"model": "120b"}), REGISTRY).to_json()
    assert nodes["backend"] == "vllm" and nodes["offload"]["pipeline_parallel_size"] == 2
    assert "backend: vLLM: the engine that serves one model over 2 nodes" in nodes["reasons"]
    one = plan(node_from_spec("L40S"), constraints("auto", {"model": "20b"}), REGISTRY)
    assert one.chosen.backend == "llamacpp" and "vllm" in [a.backend for a in one.alternatives]


def test_no_fit_names_what_is_missing_and_what_would_work_instead():
    with pytest.raises(NoFitError) as err:
        plan_for("cpu-only", "laptop", model="120b")
    assert "needs 61.4 GiB of RAM on this CPU-only machine; 27.0 GiB is available" in err.value.message
    assert "Instead: gpt-oss-20b on llamacpp fits (drop --model)" in err.value.message


def test_cloud_region_outside_the_regions_that_offer_it_is_flagged():
    def reasons(region):
        return plan(load_hardware(fixture_path("cpu-only")),
                    constraints("aws", {}, {"GPTOSS_MODEL": "20b"}).relaxed(region=region), REGISTRY).reasons
    assert not any("check that eu-west-1 serves it" in r for r in reasons("eu-west-1"))   # offered there now
    assert any("offers gpt-oss in us-east-1, us-east-2, us-west-2" in r and "check that ca-central-1 serves it" in r
               for r in reasons("ca-central-1"))


def test_a_slow_local_plan_beats_cloud_unless_cloud_is_asked_for_and_says_what_is_faster():
    slow = plan_for("cpu-only-2core")                               # auto profile: floor 15 tok/s
    assert (slow.chosen.model.name, slow.chosen.backend, slow.chosen.status) == ("gpt-oss-20b", "llamacpp",
                                                                                  "degraded")
    why = "\n".join(slow.reasons)
    assert "speed: predicted 5.6 tok/s is below profile auto's 15 tok/s floor; faster: gpt-oss-120b on AWS " \
           "Bedrock ($0.15 / $0.60 per 1M input / output tokens, with --cloud)" in why
    cloud_lost = {a.backend: why for a, why in zip(slow.alternatives, slow.lost_because) if a.status == "cloud"}
    assert cloud_lost["bedrock"].endswith("unless cloud is asked for (--cloud)")
    asked = plan(load_hardware(fixture_path("cpu-only-2core")), constraints("auto", {"cloud": True}), REGISTRY)
    assert (asked.chosen.backend, asked.chosen.status) == ("bedrock", "cloud")
    assert "cloud is fine (flag --cloud)" in "\n".join(asked.reasons)
    assert "--cloud" in as_flags(asked.constraints)


def test_cloud_and_local_together_are_a_usage_error():
    with pytest.raises(UsageError, match="asks for cloud and flag --local forbids it"):
        constraints("auto", {"cloud": True, "local_only": True})


def test_a_default_context_too_long_to_read_is_capped_and_a_chosen_one_is_kept_with_its_time():
    capped = plan_for("cpu-only-2core").to_json()
    predicted = capped["predicted"]
    assert capped["context_length"] == 4096
    # the prefill rate at each depth, integrated: slower than depth 0's rate throughout
    at_depth_zero = 4096 / predicted["prefill_tokens_per_s"]
    assert predicted["full_prompt_ttft_s"] == pytest.approx(
        at_depth_zero * (1 + 4096 / (2 * predicted["prefill_half_depth_tokens"])), rel=0.01)
    assert any(r.startswith("context: 4,096 tokens, capped from 32,768 (profile auto): a full 32,768-token "
                            "prompt would take ~2,553 s to first token (predicted prefill 19 tok/s, slowing as the "
                            "prompt grows)") and r.endswith("--context 32768 keeps it")
               for r in capped["reasons"])
    kept = plan(load_hardware(fixture_path("cpu-only-2core")), constraints("auto", {"context": "32768"}),
                REGISTRY).to_json()
    assert kept["context_length"] == 32768 and kept["predicted"]["full_prompt_ttft_s"] > 1000
    assert any(r.startswith("context: 32,768 tokens (flag --context); a full prompt takes ~2,553 s")
               for r in kept["reasons"])


def test_a_fast_machine_keeps_the_full_context_and_states_its_time_to_first_token():
    doc = plan_for("h100-sxm", "server").to_json()
    assert doc["context_length"] == 131072 and 0 < doc["predicted"]["full_prompt_ttft_s"] < 60


def test_the_profile_floor_decides_between_120b_offloaded_and_20b_on_gpu():
    strict = plan_for("rtx4090-desktop", "workstation")
    assert strict.chosen.model.name == "gpt-oss-120b"            # ~32 tok/s >= 20
    picky = plan(load_hardware(fixture_path("rtx4090-desktop")),
                 constraints("server", {"backend": "llamacpp"}), REGISTRY)   # floor 50 tok/s
    assert picky.chosen.model.name == "gpt-oss-20b"
    assert picky.binding_constraint.startswith("decode speed floor")


def test_flags_beat_env_beat_profile_and_the_plan_says_where_each_came_from():
    c = constraints("laptop", {"context": "8192"}, {"GPTOSS_CONTEXT": "4096", "GPTOSS_MODEL": "20b"})
    assert (c.context, c.source("context")) == (8192, "flag --context")
    assert (c.model, c.source("model")) == ("20b", "env GPTOSS_MODEL")
    assert c.source("reasoning_effort") == "profile laptop"


@pytest.mark.parametrize("bad", ["0", "-5", "100", "4095", "131073", "129k", "abc", "1.5", "32 k b"])
def test_context_must_be_a_number_of_tokens_from_4k_to_128k(bad):
    with pytest.raises(UsageError, match="context must be a number of tokens from 4096 \\(4k\\) to 131072"):
        constraints("auto", {"context": bad}, {})


@pytest.mark.parametrize("given,tokens", [("32k", 32768), ("128K", 131072), ("131072", 131072), ("4k", 4096),
                                          (" 64k ", 65536)])
def test_context_takes_thousands_of_tokens_as_k(given, tokens):
    assert constraints("auto", {"context": given}, {}).context == tokens


def test_cloud_backend_with_local_flag_is_a_usage_error():
    with pytest.raises(UsageError, match="--local forbids cloud"):
        constraints("auto", {"backend": "bedrock", "local_only": True}, {})


def test_nodes_asked_for_a_model_one_node_holds_say_to_run_replicas_instead(run_cli):
    """Two H100 nodes for 120b: one H100 holds it, so two replicas serve twice the streams of a pipeline over both."""
    code, _, err = run_cli("plan", "--gpu", "H100", "--nodes", "2", "--model", "120b", "--json")
    assert code == 3 and "one node (NVIDIA H100 80GB HBM3) holds gpt-oss-120b at 32,768 tokens" in err
    assert "run 2 replicas (`gptoss export --replicas 2`)" in err

"""Hugging Face Inference Endpoints (--backend hf-endpoints): the instance vLLM's fitting picks, and `up`, `bench`,
`down` with the real huggingface_hub client against a local stand-in of the Hub and Endpoints APIs
(tests/fake_hf_endpoints.py), the endpoint itself played by the fake OpenAI server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import huggingface_hub
import pytest
from huggingface_hub.utils._http import default_client_factory

from gptoss_deploy.export.common import PORT

from fake_hf_endpoints import FakeHf
from helpers import fixture_path, free_port

TOKEN = "hf_fake_token_for_tests_0123456789"
CPU_ONLY = fixture_path("cpu-only")


def planned(run_cli, model: str = "20b") -> dict:
    code, out, err = run_cli("plan", "--json", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", model)
    assert code == 0, err
    return json.loads(out)


def test_the_instance_is_the_first_where_vllm_holds_the_model_with_the_planned_flags(run_cli):
    small, big = planned(run_cli, "20b")["launch"]["api"], planned(run_cli, "120b")["launch"]["api"]
    assert (small["instance_type"], small["instance_size"]) == ("nvidia-l4", "x1")
    assert (big["instance_type"], big["instance_size"]) == ("nvidia-a100", "x1")
    assert big["image"] == {"vLLM": {"url": "vllm/vllm-openai:v0.33.0", "port": PORT, "tensorParallelSize": 1}}
    args = big["args"]
    assert args[args.index("--max-model-len") + 1] == "32768" and "--host" not in args and "--port" not in args
    assert args[:3] == ["--served-model-name", "gpt-oss-120b", "openai/gpt-oss-120b"]


@pytest.fixture
def served(tmp_path):
    """The endpoint's server once it runs: the fake OpenAI server, which wants the Hugging Face token."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fake_openai_server.py"), "--port", str(port),
                               "--served-model-name", "gpt-oss-20b"], env={**os.environ, "VLLM_API_KEY": TOKEN},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def hf(served, monkeypatch):
    fake = FakeHf(TOKEN, served)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("GPTOSS_HF_POLL_S", "0")
    huggingface_hub.set_client_factory(fake.client)
    yield fake
    huggingface_hub.set_client_factory(default_client_factory)
    fake.close()


def test_up_creates_our_endpoint_waits_benchmarks_and_down_deletes_it(run_cli, hf, state):
    code, out, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b", "--json",
                             "--name", "gpt-oss-20b-hf")
    assert code == 0, err
    record = json.loads(out)
    [body] = hf.created
    plan_api = record["plan"]["launch"]["api"]
    assert body["tags"] == ["gptoss-deploy"] and body["type"] == "authenticated"      # the token is required
    assert body["compute"]["instanceType"] == "nvidia-l4" and body["compute"]["instanceSize"] == "x1"
    assert body["model"]["image"] == plan_api["image"] and body["model"]["args"] == plan_api["args"]
    assert body["model"]["repository"] == "openai/gpt-oss-20b"
    assert "initializing" in err                                      # progress while it starts
    assert record["endpoint"]["base_url"] == f"{hf.serve_url}/v1" and record["account"] == "alice"
    assert record["benchmark"]["decode_tokens_per_s"] > 0             # with the token, over the OpenAI API
    assert "nvidia-l4 x1 is billed $0.8 per hour (Hugging Face's price at creation)" in record["warnings"][0]
    assert TOKEN not in out and TOKEN not in json.dumps(state.records()[record["name"]].to_json())

    code, _, err = run_cli("down", record["name"], "--yes")
    assert code == 0, err
    assert hf.deleted == [body["name"]] and state.records() == {}


def test_down_deletes_only_an_endpoint_that_carries_our_tag(run_cli, hf, state):
    code, out, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b",
                             "--no-bench", "--json")
    assert code == 0, err
    name = json.loads(out)["name"]
    [endpoint] = hf.endpoints.values()
    endpoint["tags"] = []                                             # retagged by someone else since
    code, _, err = run_cli("down", name, "--yes")
    assert code == 4 and "does not carry the tag gptoss-deploy" in err
    assert hf.deleted == [] and name in state.records()
    endpoint["tags"] = ["gptoss-deploy"]                              # ours again: the state fixture takes it down


def test_an_endpoint_that_fails_to_start_is_deleted_and_up_exits_4(run_cli, hf, state):
    hf.fail = True
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b", "--no-bench")
    assert code == 4 and "failed to start" in err
    assert hf.deleted == [hf.created[0]["name"]] and state.records() == {}


def test_an_instance_beyond_the_accounts_quota_is_exit_4_before_anything_is_created(run_cli, hf, state):
    from fake_hf_endpoints import _compute

    hf.computes = [_compute("nvidia-l4", 1, 0.8, used=4, limit=4)]
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
    assert code == 4 and "alice may run 4, 4 in use: delete an endpoint, or ask Hugging Face for more quota" in err
    hf.computes = []
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
    assert code == 4 and "Hugging Face does not offer nvidia-l4 x1 in aws us-east-1 now" in err
    assert hf.created == [] and state.records() == {}


def test_a_refused_or_missing_token_is_exit_4_with_the_fix(run_cli, hf, state, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_someone_elses_token_000000000")
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
    assert code == 4 and "Hugging Face refused the token (HTTP 401): run `hf auth login`" in err
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
    assert code == 4 and "no Hugging Face token found: run `hf auth login`, or set HF_TOKEN" in err
    assert hf.created == [] and state.records() == {}


@pytest.mark.parametrize("change, said", [
    (lambda api: api["image"]["vLLM"].update(url="evil.example/miner:latest"), "launch.api.image is"),
    (lambda api: api.update(repository="someone/other-model"), "launch.api.repository is 'someone/other-model'"),
    (lambda api: api["args"].append("--trust-remote-code"),
     "the plan's launch.api.args has a flag gptoss does not plan: '--trust-remote-code'"),
    (lambda api: api["env"].update(LD_PRELOAD="/tmp/evil.so"), "the plan's launch.api.env sets LD_PRELOAD"),
])
def test_a_saved_plan_asking_for_what_gptoss_never_plans_creates_nothing(run_cli, hf, state, tmp_path, change,
                                                                         said):
    plan = planned(run_cli)
    change(plan["launch"]["api"])
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(plan))
    code, out, err = run_cli("up", "--plan", saved, "--no-bench")
    assert code == 2 and said in err
    assert hf.created == [] and state.records() == {}


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_an_unreachable_hub_and_a_bad_poll_setting_are_one_line_before_anything_is_created(run_cli, state,
                                                                                         monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    huggingface_hub.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(unreachable)))
    try:
        monkeypatch.setenv("GPTOSS_HF_POLL_S", "abc")
        code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
        assert code == 2 and "GPTOSS_HF_POLL_S" in err and err.count("\n") == 1
        monkeypatch.setenv("GPTOSS_HF_POLL_S", "0")
        code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b")
        assert code == 4 and "cannot reach Hugging Face (ConnectError): check the network" in err
        assert err.count("\n") == 1 and state.records() == {}
    finally:
        huggingface_hub.set_client_factory(default_client_factory)


def test_a_cloud_endpoint_has_no_host_or_port_of_ours_to_set(run_cli, state):
    code, _, err = run_cli("up", "--hardware", CPU_ONLY, "--backend", "hf-endpoints", "--model", "20b", "--host",
                           "0.0.0.0")
    assert code == 2 and "--host and --port place a server on this machine" in err and state.records() == {}

"""--variant safeguard: gpt-oss-safeguard's weights from every backend that publishes them (each reference checked
against its upstream: docs/sources.md, SGG), a clear exit 2 where a named backend has none."""
from __future__ import annotations

import json
import shlex

import pytest

from helpers import fixture_path

DESKTOP = fixture_path("rtx4090-desktop")


def planned(run_cli, *flags) -> dict:
    code, out, err = run_cli("plan", "--variant", "safeguard", "--json", *flags)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("backend, machine, reference", [
    ("ollama", ["--hardware", DESKTOP], "gpt-oss-safeguard:20b"),                  # ollama run gpt-oss-safeguard:20b
    ("lmstudio", ["--hardware", DESKTOP], "openai/gpt-oss-safeguard-20b"),        # lms get openai/gpt-oss-safeguard-20b
    ("vllm", ["--gpu", "H100"], "openai/gpt-oss-safeguard-20b"),                  # vllm serve openai/gpt-oss-safeguard-*
    ("hf-endpoints", [], "openai/gpt-oss-safeguard-20b"),                         # OpenAI's Hugging Face repository
])
def test_each_backend_that_publishes_safeguard_loads_its_own_reference(run_cli, backend, machine, reference):
    plan = planned(run_cli, "--backend", backend, "--model", "20b", *machine)
    assert plan["model"] == "gpt-oss-safeguard-20b" and plan["backend"] == backend
    launch = json.dumps(plan["launch"])
    assert reference in launch and "openai/gpt-oss-20b\"" not in launch and "gpt-oss:20b" not in launch


@pytest.mark.parametrize("backend, hint", [("llamacpp", "--gguf FILE"), ("foundry", ""), ("bedrock", ""),
                                           ("azure", "")])
def test_a_named_backend_without_safeguard_is_exit_2_naming_those_with_it(run_cli, backend, hint):
    code, out, err = run_cli("plan", "--variant", "safeguard", "--backend", backend, "--hardware", DESKTOP)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "has no gpt-oss-safeguard" in err and "choose --backend ollama or vllm or sglang or lmstudio or hf-endpoints" in err
    assert hint in err


def test_auto_plans_safeguard_where_its_weights_are_and_keeps_the_variant_in_the_launch_line(run_cli):
    code, out, err = run_cli("plan", "--variant", "safeguard", "--hardware", fixture_path("cpu-only"), "--yes")
    assert code == 0, err
    assert "gpt-oss-safeguard-20b on ollama" in out
    launch = next(line.strip() for line in out.splitlines() if line.strip().startswith("gptoss-up"))
    assert shlex.split(launch)[shlex.split(launch).index("--variant") + 1] == "safeguard"
    rejected = planned(run_cli, "--hardware", fixture_path("cpu-only"))["rejected"]
    assert any(r["backend"] == "llamacpp" and "has no gpt-oss-safeguard-20b" in r["reason"] for r in rejected)


def test_the_variant_comes_from_the_environment_too_and_a_bad_one_is_exit_2(run_cli, monkeypatch):
    monkeypatch.setenv("GPTOSS_VARIANT", "safeguard")
    code, out, _ = run_cli("plan", "--hardware", DESKTOP, "--model", "20b", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["model"] == "gpt-oss-safeguard-20b" and plan["sources"]["variant"] == "env GPTOSS_VARIANT"
    monkeypatch.setenv("GPTOSS_VARIANT", "guard")
    code, _, err = run_cli("plan", "--hardware", DESKTOP)
    assert code == 2 and "GPTOSS_VARIANT=guard: unknown variant 'guard'; choose gpt-oss or safeguard" in err


def test_a_safeguard_model_named_in_full_is_exit_2_saying_its_two_flags(run_cli):
    code, _, err = run_cli("plan", "--hardware", DESKTOP, "--model", "gpt-oss-safeguard-120b")
    assert code == 2
    assert "unknown model 'gpt-oss-safeguard-120b'; choose auto, 20b or 120b (gpt-oss-safeguard-120b is --model 120b " \
           "--variant safeguard)" in err


def test_a_plan_without_the_flag_is_gpt_oss_and_says_nothing_of_variants(run_cli):
    code, out, _ = run_cli("plan", "--hardware", DESKTOP, "--json")
    plan = json.loads(out)
    assert code == 0 and plan["model"] == "gpt-oss-120b" and "variant" not in plan["sources"]


def test_a_safeguard_gguf_you_have_runs_on_llamacpp_and_its_saved_plan_asks_for_the_file(run_cli, smollm2,
                                                                                           tmp_path):
    code, out, err = run_cli("up", "--gguf", smollm2, "--variant", "safeguard", "--dry-run", "--json")
    assert code == 0, err
    dry = json.loads(out)
    assert (dry["plan"]["model"], dry["plan"]["backend"]) == ("gpt-oss-safeguard-20b", "llamacpp")
    assert str(smollm2) in dry["argv"]
    saved = tmp_path / "plan.json"
    saved.write_text(json.dumps(dry["plan"]))
    code, _, err = run_cli("up", "--plan", saved, "--dry-run")
    assert code == 2 and "ggml-org publishes no GGUF of gpt-oss-safeguard-20b" in err and "--gguf FILE" in err


def test_an_exported_safeguard_deployment_serves_safeguard(run_cli):
    code, out, err = run_cli("export", "--format", "kubernetes", "--gpu", "H100", "--model", "120b", "--backend",
                             "vllm", "--variant", "safeguard")
    assert code == 0, err
    assert "openai/gpt-oss-safeguard-120b" in out and "openai/gpt-oss-120b" not in out

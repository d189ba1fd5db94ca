"""The wizard in a real pseudo-terminal, answered as a person would: Enter, arrow keys, typed numbers, Ctrl-C."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pexpect

from helpers import fixture_path, plan_for

ANSI = r"(?:\x1b\[[0-9;]*m)*"


def shown(text: str) -> str:
    """A pattern for TEXT as the terminal shows it: styles may sit between the words."""
    return (ANSI + " +" + ANSI).join(re.escape(word) for word in text.split(" "))


def spawn(*args: str) -> pexpect.spawn:
    # PROMPT_TOOLKIT_NO_CPR: pexpect does not answer cursor-position requests the way a terminal does
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "50", "PROMPT_TOOLKIT_NO_CPR": "1"}
    command = [sys.executable, "-c", "from gptoss_deploy.cli.app import plan_main; plan_main()", *args]
    return pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=90, dimensions=(50, 80))


def answer(child: pexpect.spawn, *replies: tuple[str, str]) -> None:
    """Wait for each question, then type its keys."""
    for question, keys in replies:
        child.expect_exact(question)
        child.send(keys)


def finish(child: pexpect.spawn, *shown_texts: str) -> int:
    for text in shown_texts:
        child.expect(shown(text))
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_enter_accepts_the_defaults_and_ends_with_the_plan_and_up_command():
    child = spawn("--hardware", str(fixture_path("laptop-rtx4060-8gb")))
    answer(child, ("What will you use gpt-oss for?", "\r"), ("How hard should it think?", "\r"),
           ("Which model?", "\r"), ("How much context", "\r"), ("Where may it run?", "\r"), ("Which backend?", "\r"))
    assert finish(child, "gpt-oss-20b on llamacpp", "Launch it:", "gptoss-up --profile auto",
                  "reasoning effort: medium (wizard answer)") == 0


def test_arrow_keys_and_typed_numbers_change_the_answers():
    child = spawn("--hardware", str(fixture_path("rtx4090-desktop")))
    answer(child, ("What will you use gpt-oss for?", "\x1b[B\r"),   # arrow down: coding agent (64k, high)
           ("How hard should it think?", "\r"),                      # its default: high
           ("Which model?", "2\r"),                                  # typed answer: gpt-oss-20b
           ("How much context", "\r"), ("Where may it run?", "\r"), ("Which backend?", "\r"))
    assert finish(child, "gpt-oss-20b on llamacpp", "context 65,536", "effort high", "--model 20b") == 0


def test_backends_that_cannot_run_here_are_hidden_until_asked_for_and_then_say_why():
    child = spawn("--hardware", str(fixture_path("cpu-only")))
    answer(child, ("What will you use gpt-oss for?", "\r"), ("How hard should it think?", "1\r"),   # typed: low
           ("Which model?", "\r"), ("How much context", "\r"), ("Where may it run?", "\r"))
    child.expect_exact("Which backend?")
    child.expect_exact("show the backends that cannot run here")
    listed = child.before
    assert "vllm" not in listed and "llamacpp" in listed and "foundry" in listed    # its CPU variant runs here
    child.send("\x1b[B" * 3 + "\r")                             # arrow down past llamacpp and foundry: show them
    child.expect(r"(?s)These backends cannot run here as things are:(.*?)Which backend\? \(those above")
    told = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n", "", child.match.group(1))   # the terminal's own folds undone
    assert "vllm: vLLM is not installed: `pip install vllm` on Linux with a supported GPU" in told   # whole
    child.expect_exact("vllm (not usable here: see above)")
    child.send("\r")                                              # auto, as recommended
    assert finish(child, "gpt-oss-20b on llamacpp", "effort low", "reasoning effort: low (wizard answer)") == 0


def test_ctrl_c_exits_130_without_a_traceback():
    child = spawn("--hardware", str(fixture_path("laptop-rtx4060-8gb")))
    child.expect_exact("What will you use gpt-oss for?")
    child.sendintr()
    child.expect(pexpect.EOF)
    output = child.before
    child.close()
    assert child.exitstatus == 130
    assert "Traceback" not in output and "interrupted" in output


def test_flags_skip_their_questions():
    child = spawn("--hardware", str(fixture_path("laptop-rtx4060-8gb")), "--model", "20b", "--context", "8192",
                  "--local", "--backend", "llamacpp")
    answer(child, ("What will you use gpt-oss for?", "\r"), ("How hard should it think?", "\r"))
    index = child.expect([re.escape("Which model?"), shown("context 8,192")])
    assert index == 1
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def scripted(replies: dict[str, str]):
    """A select() that answers by question prefix (the default where no reply is given) and records the asking."""
    asked = {}

    def select(question, choices, default):
        asked[question] = (choices, default)
        reply = next((r for prefix, r in replies.items() if question.startswith(prefix)), None)
        return next(c for c in choices if c.startswith(reply)) if reply else default
    return select, asked


def wizard_plan(fixture: str, replies: dict[str, str], told: bool = False):
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.cli.wizard import ask
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.hardware import load_hardware
    from gptoss_deploy.planner.plan import plan

    hw, base = load_hardware(fixture_path(fixture)), load_constraints(None, {}, {}, REGISTRY)
    select, asked = scripted(replies)
    lines = []
    answers = ask(base, plan(hw, base, REGISTRY), REGISTRY, select, lines.append)
    result = plan(hw, load_constraints(None, {}, {}, REGISTRY, answers), REGISTRY)
    return (result, asked, lines) if told else (result, asked)


def test_effort_is_asked_with_what_it_costs_and_defaults_to_the_use_cases():
    result, asked = wizard_plan("rtx4090-desktop", {"What will you use": "Coding agent"})
    choices, default = asked["How hard should it think?"]
    assert default.startswith("high") and any("several times the tokens" in c for c in choices)
    assert result.constraints.source("reasoning_effort") == "wizard answer"
    low, _ = wizard_plan("rtx4090-desktop", {"What will you use": "Coding agent", "How hard": "low"})
    assert low.constraints.reasoning_effort == "low"


def test_vllm_on_a_cpu_only_machine_is_offered_only_with_the_reason_it_cannot_run(monkeypatch):
    monkeypatch.setenv("GPTOSS_VLLM", "/opt/vllm/bin/vllm")       # installed: the machine is what rules it out
    _, asked, told = wizard_plan("cpu-only", {"Which backend? (those": "auto", "Which backend?": "show the backends"},
                                 told=True)
    first = asked["Which backend?"][0]
    revealed = asked["Which backend? (those above cannot run here)"][0]
    assert "vllm" not in first and "vllm (not usable here: see above)" in revealed
    assert any(line.startswith("  vllm: ") and "only on Intel Xeon 6 CPUs" in line and "no GPU" in line for line in told)


def test_smallest_footprint_means_20b():
    result, asked = wizard_plan("rtx4090-desktop", {"What will you use": "Quick answers"})
    assert asked["Which model?"][1] == "gpt-oss-20b" and result.chosen.model.name == "gpt-oss-20b"


def context_question(fixture: str, use_case: str):
    result, asked = wizard_plan(fixture, {"What will you use": use_case})
    [(question, (choices, default))] = [(q, a) for q, a in asked.items() if q.startswith("How much context")]
    return result, question, choices, default


def test_the_context_offered_is_the_plans_own_cap_and_the_question_says_why():
    result, question, choices, default = context_question("apple-m2-16gb", "Coding agent")
    assert question.endswith("(here a prompt over 15,360 tokens takes more than 60 s to read)")
    assert default == "15,360 tokens (the longest read within 60 s here)" and choices[0] == "4,096 tokens"
    assert result.chosen.placement.context_length == 15360 and result.chosen.full_prompt_ttft_s() <= 60
    # the same cap the plan makes when nobody chose a context
    assert plan_for("apple-m2-16gb").chosen.placement.context_length == 15360


def test_on_a_machine_that_reads_nothing_within_a_minute_the_question_says_so():
    result, question, choices, default = context_question("cpu-only-2core", "Chat and everyday")
    seconds = result.chosen.full_prompt_ttft_s()
    assert seconds > 60 and question.endswith(f"(here even 4,096 tokens take ~{seconds:,.0f} s to read: nothing is "
                                              "read within 60 s)")
    assert default == "4,096 tokens" and result.chosen.placement.context_length == 4096


def test_cloud_is_fine_maps_to_cloud_and_the_launch_line_reproduces_it():
    from gptoss_deploy.planner.constraints import as_flags

    result, _ = wizard_plan("cpu-only-2core", {"Where may it run?": "Cloud is fine"})
    assert result.chosen.status == "cloud" and "--cloud" in as_flags(result.constraints)
    local, _ = wizard_plan("cpu-only-2core", {"Where may it run?": "Only on this machine"})
    assert local.chosen.backend == "llamacpp" and "--local" in as_flags(local.constraints)


def test_up_restates_a_degraded_plan_before_its_download_and_asks_first(tmp_path):
    """On a terminal the question comes before 11 GiB are fetched; in a pipeline the warning, then the launch."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "PROMPT_TOOLKIT_NO_CPR": "1",
           "GPTOSS_STATE_DIR": str(tmp_path / "state"), "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    up = [sys.executable, "-c", "from gptoss_deploy.cli.app import up_main; up_main()", "--hardware",
          str(fixture_path("cpu-only-2core")), "--force", "--no-bench"]
    child = pexpect.spawn(up[0], up[1:], env=env, encoding="utf-8", timeout=60, dimensions=(50, 80))
    child.expect_exact("warning: this plan is degraded (speed: predicted 5.6 tok/s is below profile auto's 15 tok/s "
                       "floor")
    child.expect_exact("and it downloads 11.3 GiB first")
    child.expect_exact("Download 11.3 GiB and launch it anyway?")
    child.send("n\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130 and "declined: nothing was downloaded or started" in child.before
    assert not (tmp_path / "hf").exists()
    piped = subprocess.run(up, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert "warning: this plan is degraded" in piped.stderr and "anyway?" not in piped.stderr
    assert piped.returncode == 4                     # it went on to the download, which offline mode refuses


def test_content_moderation_plans_gpt_oss_safeguard_where_its_weights_are():
    result, asked = wizard_plan("rtx4090-desktop", {"What will you use": "Content moderation"})
    choices, default = asked["Which model?"]
    assert choices[1:] == ["gpt-oss-safeguard-20b", "gpt-oss-safeguard-120b"]
    assert "gpt-oss-safeguard-120b on ollama" in default            # the recommendation is the safeguard plan's
    assert result.chosen.model.name.startswith("gpt-oss-safeguard-") and result.chosen.backend != "llamacpp"
    assert result.constraints.source("variant") == "wizard answer"

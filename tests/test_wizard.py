"""The wizard in a real pseudo-terminal, answered as a person would: Enter, arrow keys, typed numbers, Ctrl-C."""
from __future__ import annotations

import os
import re
import sys

import pexpect

from helpers import fixture_path

ANSI = r"(?:\x1b\[[0-9;]*m)*"


def shown(text: str) -> str:
    """A pattern for TEXT as the terminal shows it: styles may sit between the words."""
    return (ANSI + " +" + ANSI).join(re.escape(word) for word in text.split(" "))


def spawn(*args: str) -> pexpect.spawn:
    # PROMPT_TOOLKIT_NO_CPR: pexpect does not answer cursor-position requests the way a terminal does
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "50", "PROMPT_TOOLKIT_NO_CPR": "1"}
    command = [sys.executable, "-c", "from gptoss_deploy.cli.app import plan_main; plan_main()", *args]
    return pexpect.spawn(command[0], command[1:], env=env, encoding="utf-8", timeout=20, dimensions=(50, 80))


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
    assert finish(child, "gpt-oss-20b on llamacpp", "reasoning effort: medium (wizard answer)", "Launch it:",
                  "gptoss-up --profile auto") == 0


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
    assert "vllm" not in listed and "llamacpp" in listed
    child.send("\x1b[B\x1b[B\r")                                # arrow down twice: show them
    child.expect(shown("vllm: not usable here"))
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


def wizard_plan(fixture: str, replies: dict[str, str]):
    from gptoss_deploy.backends import REGISTRY
    from gptoss_deploy.cli.wizard import ask
    from gptoss_deploy.planner.constraints import load_constraints
    from gptoss_deploy.planner.hardware import load_hardware
    from gptoss_deploy.planner.plan import plan

    hw, base = load_hardware(fixture_path(fixture)), load_constraints(None, {}, {}, REGISTRY)
    select, asked = scripted(replies)
    answers = ask(base, plan(hw, base, REGISTRY), REGISTRY, select)
    return plan(hw, load_constraints(None, {}, {}, REGISTRY, answers), REGISTRY), asked


def test_effort_is_asked_with_what_it_costs_and_defaults_to_the_use_cases():
    result, asked = wizard_plan("rtx4090-desktop", {"What will you use": "Coding agent"})
    choices, default = asked["How hard should it think?"]
    assert default.startswith("high") and any("several times the tokens" in c for c in choices)
    assert result.constraints.source("reasoning_effort") == "wizard answer"
    low, _ = wizard_plan("rtx4090-desktop", {"What will you use": "Coding agent", "How hard": "low"})
    assert low.constraints.reasoning_effort == "low"


def test_vllm_on_a_cpu_only_machine_is_offered_only_with_the_reason_it_cannot_run(monkeypatch):
    monkeypatch.setenv("GPTOSS_VLLM", "/opt/vllm/bin/vllm")       # installed: the machine is what rules it out
    _, asked = wizard_plan("cpu-only", {"Which backend? (these": "auto", "Which backend?": "show the backends"})
    first, revealed = asked["Which backend?"][0], asked["Which backend? (these cannot run here as things are)"][0]
    assert "vllm" not in first
    vllm = next(c for c in revealed if c.startswith("vllm"))
    assert vllm.startswith("vllm: not usable here (") and "needs a GPU" in vllm


def test_smallest_footprint_means_20b():
    result, asked = wizard_plan("rtx4090-desktop", {"What will you use": "Quick answers"})
    assert asked["Which model?"][1] == "gpt-oss-20b" and result.chosen.model.name == "gpt-oss-20b"


def test_the_context_offered_is_one_this_machine_reads_in_a_minute_and_the_question_says_why():
    result, asked = wizard_plan("cpu-only-2core", {"What will you use": "Coding agent"})
    [(question, (choices, default))] = [(q, a) for q, a in asked.items() if q.startswith("How much context")]
    assert question.endswith("(here a prompt over 8,192 tokens takes more than 60 s to read)")
    assert default == "8,192 tokens" and result.chosen.placement.context_length == 8192


def test_cloud_is_fine_maps_to_cloud_and_the_launch_line_reproduces_it():
    from gptoss_deploy.planner.constraints import as_flags

    result, _ = wizard_plan("cpu-only-2core", {"Where may it run?": "Cloud is fine"})
    assert result.chosen.status == "cloud" and "--cloud" in as_flags(result.constraints)
    local, _ = wizard_plan("cpu-only-2core", {"Where may it run?": "Only on this machine"})
    assert local.chosen.backend == "llamacpp" and "--local" in as_flags(local.constraints)

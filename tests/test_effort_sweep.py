"""`gptoss bench --effort-sweep`: the shipped tasks at low, medium and high effort, each effort's reasoning and answer
tokens from the stream's channels, the time to the first answer token, the latency and the right answers. The
stand-in llama-server reasons as long as the effort it was asked (chat_template_kwargs) and answers FAKE_ANSWER."""
from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from gptoss_deploy.runtime.records import Deployment
from gptoss_deploy.verify.effort_sweep import Task, load_tasks

from fake_reply import REASONING_CHUNKS
from helpers import free_port
from test_gguf import write_gguf

TASKS = load_tasks()


@pytest.fixture
def deployed(run_cli, state, stand_in, tmp_path, monkeypatch):
    """A gpt-oss deployment on the stand-in llama-server, which answers "3" after reasoning."""
    monkeypatch.setenv("FAKE_ANSWER", "3")
    monkeypatch.setenv("FAKE_SERVER_THINK_S", "0.05")
    stand_in("llama-server")
    gguf = write_gguf(tmp_path / "gpt-oss-20b.gguf", "gpt-oss", 24, 32)
    code, out, err = run_cli("up", "--gguf", gguf, "--port", free_port(), "--no-bench", "--json")
    assert code == 0, err
    return Deployment.model_validate_json(out)


def test_each_effort_reports_reasoning_answer_latency_and_right_answers(run_cli, deployed):
    code, out, err = run_cli("bench", "--effort-sweep", "--json")
    assert code == 0, err
    sweep = json.loads(out)["effort_sweep"]
    right = sum(Task.is_right(task, "3") for task in TASKS)          # the strawberry question
    assert sweep["name"] == deployed.name and sweep["tasks"] == len(TASKS) and right == 1
    efforts = {e["effort"]: e for e in sweep["efforts"]}
    assert list(efforts) == ["low", "medium", "high"]
    for effort, row in efforts.items():
        assert row["reasoning_tokens"] == REASONING_CHUNKS[effort] * len(TASKS)   # asked at that effort
        assert row["answer_tokens"] == len(TASKS) and row["correct"] == right and row["unanswered"] == 0
        assert 50 <= row["first_answer_ms"] <= row["e2e_ms"]      # the answer came after the reasoning's pause
        assert row["cost_usd"] is None
    assert efforts["low"]["e2e_ms"] < efforts["high"]["e2e_ms"]   # 44 more reasoning tokens a task take time
    assert [t["answer"] for t in efforts["high"]["tasks"]] == ["3"] * len(TASKS)
    assert any("no price" in note for note in sweep["notes"])
    assert "effort high: task 8/8" in err                         # progress went to stderr


def test_the_terminal_shows_a_row_and_bars_per_effort(run_cli, deployed):
    code, out, err = run_cli("bench", "--effort-sweep")
    assert code == 0, err
    assert "Reasoning effort: 8 tasks each" in out and "█" in out          # the bars
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for effort, reasoning in REASONING_CHUNKS.items():                   # right answers, reasoning tokens
        assert rows[effort][1:3] == ["1/8", str(reasoning * len(TASKS))]
        assert " ".join(rows[effort]).count(" ms") == 2         # both times of a fast server in one unit: no "0.1 s"
    table = [line for line in out.splitlines() if not line.startswith("  - ")]     # the notes are free to wrap
    assert max(len(line) for line in table) <= 80                       # the table fits an 80-column terminal


def test_replies_cut_off_before_answering_are_counted_and_explained(run_cli, deployed):
    code, out, err = run_cli("bench", "--effort-sweep", "--max-tokens", "10", "--json")
    assert code == 0, err
    efforts = {e["effort"]: e for e in json.loads(out)["effort_sweep"]["efforts"]}
    assert efforts["low"]["unanswered"] == 0 and efforts["high"]["unanswered"] == len(TASKS)
    assert efforts["high"]["correct"] == 0 and efforts["high"]["first_answer_ms"] is None
    assert any("reached --max-tokens 10 before they answered" in n for n in json.loads(out)["effort_sweep"]["notes"])


def test_a_url_is_swept_with_both_ways_of_asking_effort(run_cli, deployed):
    code, out, err = run_cli("bench", "--effort-sweep", "--url", deployed.endpoint.base_url, "--json")
    assert code == 0, err
    efforts = json.loads(out)["effort_sweep"]["efforts"]
    assert [e["reasoning_tokens"] for e in efforts] == [REASONING_CHUNKS[e] * len(TASKS) for e in
                                                          ("low", "medium", "high")]


@pytest.mark.parametrize("flags, says", [
    (["--effort-sweep", "--min-decode-tps", "5"], "--effort-sweep gives no verdict"),
    (["--max-tokens", "100"], "--max-tokens sizes the replies of --effort-sweep"),
    (["--effort-sweep", "--max-tokens", "0"], "--max-tokens"),
])
def test_flags_that_do_not_go_with_the_sweep_exit_2(run_cli, state, flags, says):
    code, _, err = run_cli("bench", *flags)
    assert code == 2 and says in err


def test_a_reply_is_judged_by_the_answer_it_ends_with():
    strawberry = next(t for t in TASKS if "strawberry" in t.prompt)
    assert strawberry.is_right("There are 3 r's.") and strawberry.is_right("THREE")
    assert not strawberry.is_right("23") and not strawberry.is_right("2")
    # seen from SmolLM2: a right number on the way to a wrong one is wrong
    assert not strawberry.is_right("The letter 'r' appears twice in the word 'strawberry' which is 2 x 3 = 6.")
    assert strawberry.is_right("At first glance 2, but counting again: 3.")
    train = next(t for t in TASKS if "train" in t.prompt)
    assert train.is_right("It arrives at 17:20.") and not train.is_right("17:25")
    assert not train.is_right("17:20? No: 12:33 AM in 14:45 hours.")
    syllogism = next(t for t in TASKS if "bloops" in t.prompt)
    assert syllogism.is_right("Yes.") and not syllogism.is_right("Yes, some are; but no.")
    ordered = next(t for t in TASKS if "Sort" in t.prompt)
    assert ordered.is_right("3, 7, 19, 42") and ordered.is_right("3,7,19 and 42")
    assert not ordered.is_right("7, 19, 19, and 3: 19, 23, 27, 42") and not ordered.is_right("no numbers")


def test_the_sweep_stops_at_its_budget_with_every_effort_on_the_same_tasks(run_cli, monkeypatch, request):
    """Task 3's medium request never ends (the 8th request), so the budget runs out there however busy the machine
    is: every effort is compared on tasks 1 and 2, and task 3's low reply is left out."""
    monkeypatch.setenv("FAKE_SERVER_STALL_REQUEST", "8")
    request.getfixturevalue("deployed")
    code, out, err = run_cli("bench", "--effort-sweep", "--budget", "10", "--json")
    assert code == 0, err
    sweep = json.loads(out)["effort_sweep"]
    assert sweep["stopped"] == "budget" and sweep["tasks"] == 2 and sweep["wall_s"] < 12
    assert [len(e["tasks"]) for e in sweep["efforts"]] == [2, 2, 2]
    assert sweep["notes"][0] == "the sweep reached its 10 s budget (--budget) after 2 of 8 tasks: each effort is " \
                                "compared on those 2"


def test_a_budget_too_short_for_one_task_says_to_raise_it(run_cli, monkeypatch, request):
    monkeypatch.setenv("FAKE_SERVER_STALL_REQUEST", "1")             # the first reply never ends
    request.getfixturevalue("deployed")
    monkeypatch.setenv("GPTOSS_SWEEP_BUDGET_S", "2")
    code, _, err = run_cli("bench", "--effort-sweep")
    assert code == 4 and "budget ran out before one task was answered at every effort: raise --budget" in err


def test_ctrl_c_shows_the_rows_finished_so_far(monkeypatch, request):
    monkeypatch.setenv("FAKE_SERVER_STALL_REQUEST", "8")             # task 3 at medium: it waits for the Ctrl-C
    request.getfixturevalue("deployed")
    monkeypatch.setenv("COLUMNS", "80")
    sweep = subprocess.Popen([sys.executable, "-c", "from gptoss_deploy.cli.app import main; main()", "bench",
                              "--effort-sweep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in sweep.stderr:                                      # progress, a line a request
        if "effort medium: task 3/8" in line:
            break
    sweep.send_signal(signal.SIGINT)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130 and "interrupted after 2 of 8 tasks: the rows above are those" in err
    assert "Reasoning effort: 2 tasks each" in out and "2 of 8 tasks" in out
    assert "Traceback" not in err

"""The micro-benchmark's judgement, staged with the stand-in OpenAI server: what counts, what is invalid, the gates."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptoss_deploy.backends.openai_api import served_models
from gptoss_deploy.backends.streaming import StreamClock
from helpers import bench_exit_code, free_port, measured

SERVER = Path(__file__).parent / "fake_openai_server.py"


@pytest.fixture
def server(monkeypatch):
    """Start the stand-in with extra environment; yields its base URL."""
    started = []

    def start(**env) -> str:
        port = free_port()
        started.append(subprocess.Popen([sys.executable, str(SERVER), "--alias", "m", "--port", str(port)],
                                        env={**os.environ, **env}, stdout=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}/v1"
        while served_models(url) is None:
            assert started[-1].poll() is None
            time.sleep(0.05)
        return url

    yield start
    for process in started:
        process.kill()
        process.wait()


def bench(run_cli, url, *gates):
    code, out, err = run_cli("bench", "--url", url, "--json", *gates)
    document = json.loads(out)
    return code, document.get("result", document)["benchmark"], err


def test_ttft_counts_reasoning_tokens_and_usage_gives_the_count(run_cli, server):
    code, result, _ = bench(run_cli, server(FAKE_SERVER_THINK_S="0.5"))
    assert measured(result) and code == bench_exit_code(result)
    assert result["ttft_ms"] < 400             # the answer came 500 ms later; the first reasoning token counts


def test_server_timings_that_disagree_make_the_run_invalid(run_cli, server):
    code, result, err = bench(run_cli, server(FAKE_SERVER_TIMINGS_TPS="5"))
    assert code == 5 and result["verdict"] == "invalid" and result["server_decode_tokens_per_s"] == 5.0
    assert "differ by more than 25%" in err


def test_a_stream_that_stops_early_is_invalid(run_cli, server):
    code, result, err = bench(run_cli, server(FAKE_SERVER_STOP_AFTER="10"))
    assert code == 5 and result["verdict"] == "invalid" and "stopped early (10 of 64 tokens)" in err


@pytest.mark.parametrize("gate, message", [
    (("--min-aggregate-tps", "1e9"), "is below --min-aggregate-tps 1e+09"),
    (("--max-ttft-ms", "0.001"), "is above --max-ttft-ms 0.001"),
])
def test_missed_gates_fail_with_exit_5(run_cli, server, gate, message):
    code, result, err = bench(run_cli, server(), *gate)
    assert code == 5 and result["verdict"] == "fail" and message in err


def test_no_usage_in_the_stream_is_a_backend_error(run_cli, server):
    code, out, err = run_cli("bench", "--url", server(FAKE_SERVER_NO_USAGE="1"))
    assert code == 4 and "reported no usage" in err and out == ""


def test_nothing_at_the_url_exits_4(run_cli):
    code, _, err = run_cli("bench", "--url", f"http://127.0.0.1:{free_port()}/v1")
    assert code == 4 and "nothing answers at" in err


def test_decode_excludes_the_first_token_and_ttft_ends_at_it():
    # 11 tokens: the first at 0.2 s after sending, the last 1.0 s later: 10 intervals in 1.0 s.
    sample = StreamClock(sent_s=0.0, first_s=0.2, last_s=1.2).sample(11, server_decode=None)
    assert sample.ttft_ms == pytest.approx(200) and sample.decode_tokens_per_s == pytest.approx(10.0)


def test_single_streams_that_disagree_make_the_run_unstable_and_fail_a_gated_run(run_cli, server):
    code, result, err = bench(run_cli, server(FAKE_SERVER_SLOW_REQUEST="3"))   # the second single stream: busy
    assert code == 0 and result["verdict"] == "unstable"
    assert "single-stream decode varied" in result["reasons"][0] and "load average" in result["reasons"][0]
    assert result["load_average_1m"] is not None
    code, result, err = bench(run_cli, server(FAKE_SERVER_SLOW_REQUEST="3"), "--min-decode-tps", "1")
    assert code == 5 and result["verdict"] == "unstable" and "benchmark verdict unstable" in err


def test_a_slow_server_is_measured_within_the_time_budget(run_cli, server, monkeypatch):
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "10")
    url = server(FAKE_SERVER_TOKEN_INTERVAL_S="0.1")      # 10 tok/s, no prediction: 64 tokens take 6.4 s each
    code, result, err = bench(run_cli, url)
    assert measured(result) and code == 0, result
    assert result["wall_s"] <= 10 and 8 < result["output_tokens"] < 64


def test_a_stream_that_stalls_is_cut_at_the_budget_and_what_was_measured_is_reported(run_cli, server, monkeypatch):
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", "4")
    code, result, err = bench(run_cli, server(FAKE_SERVER_STALL_REQUEST="4"))   # the third single stream
    assert code == 5 and result["verdict"] == "invalid" and result["wall_s"] <= 5
    assert len(result["samples"]) == 2 and result["decode_tokens_per_s"] is not None
    assert result["aggregate_tokens_per_s"] is None
    assert "stopped at its 4 s budget during single stream 3/3" in result["reasons"][0]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_a_bad_budget_exits_2_before_anything_is_measured(run_cli, server, monkeypatch, value):
    monkeypatch.setenv("GPTOSS_BENCH_BUDGET_S", value)
    code, out, err = run_cli("bench", "--url", "http://127.0.0.1:9/v1")
    assert code == 2 and "GPTOSS_BENCH_BUDGET_S" in err


def test_a_launch_whose_benchmark_could_not_measure_is_up_with_a_warning(run_cli, state, smollm2, stand_in,
                                                                         monkeypatch):
    """No gate asked for: the server works, so `up` succeeds; the record and `status` say the figure is untrusted."""
    stand_in("llama-server")
    monkeypatch.setenv("FAKE_SERVER_TIMINGS_TPS", "5")          # the server's own timing disagrees: invalid run
    code, out, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["state"] == "running" and record["benchmark"]["verdict"] == "invalid"
    assert "warning: the benchmark could not measure this launch (invalid" in err
    assert f"gptoss bench {record['name']}" in err
    code, out, _ = run_cli("status")
    assert code == 0 and "invalid" in out                          # the figure is marked where it is shown


def test_a_launch_with_a_gate_still_fails_when_its_benchmark_could_not_measure(run_cli, state, smollm2, stand_in,
                                                                               monkeypatch):
    stand_in("llama-server")
    monkeypatch.setenv("FAKE_SERVER_TIMINGS_TPS", "5")
    code, _, err = run_cli("up", "--gguf", smollm2, "--port", free_port(), "--min-decode-tps", "1")
    assert code == 5 and "benchmark verdict invalid" in err

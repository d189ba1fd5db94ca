"""--gguf: a local file is planned from its own metadata (a gpt-oss of either size), or launched with a warning."""
from __future__ import annotations

import json
import os

import pytest
from gguf import GGUFWriter

from helpers import fixture_path

CPU_ONLY = fixture_path("cpu-only")
GIB = 2 ** 30
REAL_SIZE = {(24, 32): int(11.27 * GIB), (36, 128): int(59.02 * GIB)}    # ggml-org's MXFP4 files (G15396)


def write_gguf(path, arch: str, layers: int, experts: int, size_bytes: int | None = None):
    """A GGUF header with no tensors, grown (sparse: no disk used) to SIZE_BYTES, the size planning reads; by
    default the size of the real file of that shape."""
    writer = GGUFWriter(path, arch)
    writer.add_name("my fine-tune")
    writer.add_block_count(layers)
    writer.add_expert_count(experts)
    writer.add_context_length(131072)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    size_bytes = REAL_SIZE.get((layers, experts)) if size_bytes is None else size_bytes
    if size_bytes:
        os.truncate(path, size_bytes)
    return path


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def dry_run(run_cli, gguf, *extra, hardware=CPU_ONLY):
    code, out, err = run_cli("up", "--gguf", gguf, "--hardware", hardware, "--dry-run", "--json", *extra)
    return code, (json.loads(out) if code == 0 else None), err


@pytest.mark.parametrize("layers, experts, model, machine", [(24, 32, "gpt-oss-20b", "cpu-only"),
                                                             (36, 128, "gpt-oss-120b", "strix-halo-128gb")])
def test_gpt_oss_gguf_is_planned_as_itself_with_its_own_size(run_cli, tmp_path, layers, experts, model, machine):
    path = write_gguf(tmp_path / "finetune.gguf", "gpt-oss", layers, experts)
    code, doc, err = dry_run(run_cli, path, hardware=fixture_path(machine))
    assert code == 0, err
    assert doc["plan"]["model"] == model and doc["plan"]["backend"] == "llamacpp"
    assert doc["plan"]["memory"]["breakdown"]["weights"] == pytest.approx(path.stat().st_size, abs=2)  # its own size
    argv = doc["argv"]
    assert value(argv, "--model") == str(path) and value(argv, "--alias") == model
    assert doc["warnings"] == [] and doc["downloads"] == []


def test_a_gpt_oss_gguf_smaller_than_its_experts_exits_2(run_cli, tmp_path):
    path = write_gguf(tmp_path / "partial.gguf", "gpt-oss", 24, 32, size_bytes=3 * GIB)     # a download cut short
    code, _, err = dry_run(run_cli, path, hardware=fixture_path("laptop-rtx4060-8gb"))
    assert code == 2 and "partial.gguf is gpt-oss-20b but holds only 3.0 GiB" in err and "complete?" in err


def test_model_flag_contradicting_the_gguf_exits_2(run_cli, tmp_path):
    path = write_gguf(tmp_path / "big.gguf", "gpt-oss", 36, 128)
    code, _, err = dry_run(run_cli, path, "--model", "20b")
    assert code == 2 and "big.gguf is gpt-oss-120b: drop --model" in err


def test_gguf_of_another_architecture_launches_with_a_warning(run_cli, smollm2):
    code, doc, _ = dry_run(run_cli, smollm2)
    assert code == 0
    assert doc["warnings"] == [f"{smollm2.name} is a llama model, not gpt-oss: the plan's memory and speed "
                               "figures do not apply to it"]
    argv = doc["argv"]
    assert value(argv, "--alias") == "SmolLM2-135M-Instruct.Q4_1"
    assert value(argv, "--ctx-size") == "8192"                # the model's own maximum, below the plan's


def test_gpt_oss_gguf_of_an_unknown_shape_is_flagged(run_cli, tmp_path):
    path = write_gguf(tmp_path / "pruned.gguf", "gpt-oss", 20, 16)
    code, doc, _ = dry_run(run_cli, path)
    assert code == 0 and "a gpt-oss of a shape gptoss does not know (20 layers, 16 experts)" in doc["warnings"][0]


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"not a gguf", "not a readable GGUF file")])
def test_bad_gguf_path_exits_2(run_cli, tmp_path, content, message):
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    code, _, err = dry_run(run_cli, path)
    assert code == 2 and message in err and str(path) in err


def test_gguf_with_another_backend_exits_2(run_cli, smollm2):
    code, _, err = dry_run(run_cli, smollm2, "--backend", "vllm")
    assert code == 2 and "--gguf runs on llama.cpp (llama-server): drop --backend vllm" in err


def test_truncated_gguf_exits_2(run_cli, tmp_path, smollm2):
    path = tmp_path / "partial.gguf"
    path.write_bytes(smollm2.read_bytes()[:200])          # an interrupted copy
    code, _, err = dry_run(run_cli, path)
    assert code == 2 and "is not a readable GGUF file" in err


def test_gguf_truncated_in_its_tensor_data_exits_2(run_cli, tmp_path, smollm2):
    path = tmp_path / "partial.gguf"
    data = smollm2.read_bytes()
    path.write_bytes(data[: len(data) * 9 // 10])        # the header is whole; the last tensors are missing
    code, _, err = dry_run(run_cli, path)
    assert code == 2 and "truncated: its tensors need" in err and f"the file has {len(data) * 9 // 10}" in err

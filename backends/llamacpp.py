"""llama.cpp (llama-server): the command for a placement, the model file, and how to run it (G15396, LCS)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil

from gptoss_deploy.backends.base import (LocalBackend, ServerLaunch, bound, endpoint, flag_value, ready_deadline_s,
                                        with_flag)
from gptoss_deploy.backends.hub import cached_path, download_plan, fetch
from gptoss_deploy.backends.process import python_module
from gptoss_deploy.planner.backend import MachineClass
from gptoss_deploy.planner.catalog import Artifact
from gptoss_deploy.planner.gguf_info import GgufInfo
from gptoss_deploy.planner.placement import EXPERTS
from gptoss_deploy.planner.units import GIB

DEFAULT_PORT = 8080
READY_BASE_S = 60.0
NOT_INSTALLED = ("llama.cpp is not installed: put llama-server on PATH (or set GPTOSS_LLAMA_SERVER), "
                 "or `pip install 'gptoss-deploy[llamacpp]'` for the embedded engine")


def executable() -> list[str] | None:
    """llama-server from GPTOSS_LLAMA_SERVER or PATH, else the engine in the xllamacpp wheel; None if neither."""
    configured = os.environ.get("GPTOSS_LLAMA_SERVER") or shutil.which("llama-server")
    if configured:
        return [configured]
    if importlib.util.find_spec("xllamacpp"):
        return python_module(f"{__package__}.llamacpp_embedded")
    return None


class LlamaCpp(LocalBackend):
    name = "llamacpp"
    title = "llama.cpp (llama-server)"
    offload = EXPERTS
    auto_rank = {MachineClass.DESKTOP: 0, MachineClass.DATACENTER: 1}
    why_chosen = ("keeps attention on the GPU and can move MoE experts to RAM per layer (--n-cpu-moe), "
                  "the best fit for desktops and laptops")
    serves_gguf_files = True
    artifacts = {   # ggml-org's MXFP4 GGUFs (G15396)
        "20b": Artifact("ggml-org/gpt-oss-20b-GGUF", int(11.27 * GIB), int(11.27 * GIB), ("gpt-oss-20b-mxfp4.gguf",)),
        "120b": Artifact("ggml-org/gpt-oss-120b-GGUF", int(59.02 * GIB), int(59.02 * GIB),
                         tuple(f"gpt-oss-120b-mxfp4-0000{i}-of-00003.gguf" for i in (1, 2, 3))),
    }

    def unavailable(self) -> str | None:
        return None if executable() else NOT_INSTALLED

    def build_launch(self, placement, settings) -> dict:
        port = settings.port or DEFAULT_PORT
        uses_gpu = any(d.device != "cpu" for d in placement.devices)
        argv = [
            "llama-server", "-hf", placement.artifact.ref,
            "--alias", placement.model.name,              # the model id clients ask for, whatever the file is called
            "--ctx-size", str(placement.context_length),
            "--jinja",                                    # gpt-oss needs its Harmony chat template
            "-ub", str(placement.ubatch), "-b", str(max(placement.ubatch, 2048)),
            "--n-gpu-layers", "999" if uses_gpu else "0",
        ]
        if uses_gpu:
            argv += ["--flash-attn", "on"]
        if uses_gpu and placement.cpu_layers:
            argv += ["--n-cpu-moe", str(placement.cpu_layers)]
        if placement.tensor_split:
            argv += ["--tensor-split", ",".join(f"{s:g}" for s in placement.tensor_split)]
        argv += [
            "--temp", "1.0", "--top-p", "1.0",            # OpenAI's recommended sampling for gpt-oss
            "--chat-template-kwargs", json.dumps({"reasoning_effort": settings.reasoning_effort}),
            "--host", settings.host, "--port", str(port),
        ]
        return {"argv": argv, "env": {}, "model_ref": placement.artifact.ref,
                "model_files": list(placement.artifact.files), "served_model": placement.model.name,
                "base_url": endpoint(settings.host, port)}

    def server_launch(self, *, plan, options, hardware, gguf: GgufInfo | None) -> ServerLaunch:
        """The llama-server command for PLAN, with the model as a local file (fetched by `prepare`)."""
        launch = plan["launch"]
        argv, host, port = bound(list(launch["argv"]), options, DEFAULT_PORT)
        served, warnings = launch.get("served_model", plan["model"]), []
        if gguf is not None:
            size, downloads = gguf.size_bytes, []
            argv = _model_flag(argv, str(gguf.path))
            if gguf.gpt_oss_size is None:
                served = gguf.served_name
                warnings.append(_not_gpt_oss_warning(gguf))
                argv = with_flag(argv, "--alias", served)
                if gguf.context_length and gguf.context_length < int(flag_value(argv, "--ctx-size") or 0):
                    argv = with_flag(argv, "--ctx-size", str(gguf.context_length))
        else:
            size = plan["memory"]["breakdown"]["weights"]
            downloads = [download_plan(launch["model_ref"], launch["model_files"], size)]
            cached = cached_path(launch["model_ref"], launch["model_files"][0])
            argv = _model_flag(argv, str(cached) if cached else f"<{launch['model_ref']}/{launch['model_files'][0]}>")
        program = executable()
        return ServerLaunch(argv=(program or argv[:1]) + argv[1:], env={}, host=host, port=port, served_model=served,
                            protocol="openai", ready_deadline_s=ready_deadline_s(options, READY_BASE_S, size),
                            downloads=downloads, warnings=warnings,
                            unavailable=None if program else NOT_INSTALLED)

    def prepare(self, *, launch, plan, progress) -> None:
        """Fetch the model files that are not cached yet and point --model at them."""
        if not launch.downloads:
            return
        path = fetch(plan["launch"]["model_ref"], plan["launch"]["model_files"],
                     plan["memory"]["breakdown"]["weights"], progress)
        launch.argv = _model_flag(launch.argv, str(path))

    def use_api_key(self, *, launch, key) -> None:
        launch.argv = with_flag(launch.argv, "--api-key-file", str(launch.api_key_file))   # a path, not the key

    def effort_fields(self, effort: str) -> dict:
        return {"chat_template_kwargs": {"reasoning_effort": effort}}


def _not_gpt_oss_warning(gguf: GgufInfo) -> str:
    if gguf.architecture == "gpt-oss":
        what = (f"a gpt-oss of a shape gptoss does not know ({gguf.block_count} layers, "
                f"{gguf.expert_count} experts)")
    else:
        what = f"a {gguf.architecture} model, not gpt-oss"
    return f"{gguf.path.name} is {what}: the plan's memory and speed figures do not apply to it"


def _model_flag(argv: list[str], path: str) -> list[str]:
    """Point llama-server at a local file: `-hf REF` becomes `--model PATH` (long form: `python -m` may precede)."""
    if "-hf" in argv:
        i = argv.index("-hf")
        return [*argv[:i], "--model", path, *argv[i + 2:]]
    return with_flag(argv, "--model", path)


LLAMACPP = LlamaCpp()

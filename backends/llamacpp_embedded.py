"""llama-server's flags, served by the llama.cpp engine inside the `xllamacpp` wheel (no binary needed).

Run as `python -P -m gptoss_deploy.backends.llamacpp_embedded <llama-server flags>`: the launcher supervises it like the
real binary. Only the flags the planner emits are accepted; anything else fails loudly.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading

from gptoss_deploy.backends.llama_threads import engine_threads
from gptoss_deploy.backends.process_groups import on_stop_signals
from gptoss_deploy.planner.errors import UsageError

SERVER_DEFAULT_SLOTS = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llama-server (xllamacpp)", allow_abbrev=False)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--alias")
    parser.add_argument("-c", "--ctx-size", type=int, default=0)
    parser.add_argument("--jinja", action="store_true")
    parser.add_argument("-ub", "--ubatch-size", type=int, default=512)
    parser.add_argument("-b", "--batch-size", type=int, default=2048)
    parser.add_argument("-ngl", "--n-gpu-layers", type=int, default=-1)
    parser.add_argument("-fa", "--flash-attn", choices=["on", "off", "auto"], default="auto")
    parser.add_argument("--n-cpu-moe", type=int, default=0)
    parser.add_argument("--tensor-split")
    parser.add_argument("--temp", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--chat-template-kwargs", type=json.loads, default={})
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key-file")
    parser.add_argument("-np", "--parallel", type=int)
    parser.add_argument("-cram", "--cache-ram", type=int)
    parser.add_argument("-ctxcp", "--ctx-checkpoints", type=int)
    parser.add_argument("-fit", "--fit", choices=["on", "off"])
    parser.add_argument("-lv", "--verbosity", "--log-verbosity", dest="verbosity", type=int)
    # as llama-server reads it (common/arg.cpp: set_env("LLAMA_ARG_THREADS")); unset: the engine's own count
    try:
        threads = engine_threads()
    except UsageError as err:
        raise SystemExit(err.message) from None
    parser.add_argument("-t", "--threads", type=int, default=threads)
    return parser


def cpu_moe_overrides(layers: int) -> str:
    """llama-server's --n-cpu-moe N as tensor overrides: the experts of the first N layers stay in RAM."""
    return ",".join(rf"blk\.{i}\.ffn_(up|down|gate)_exps=CPU" for i in range(layers))


def params_from_args(args: argparse.Namespace):
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    if args.alias:
        params.model_alias = {args.alias}
    params.n_ctx, params.n_batch, params.n_ubatch = args.ctx_size, args.batch_size, args.ubatch_size
    params.use_jinja = args.jinja
    params.n_gpu_layers = args.n_gpu_layers
    params.flash_attn_type = {"on": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                              "off": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED,
                              "auto": xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_AUTO}[args.flash_attn]
    if args.n_cpu_moe:
        params.tensor_buft_overrides = cpu_moe_overrides(args.n_cpu_moe)
    if args.tensor_split:
        shares = [float(s) for s in args.tensor_split.split(",")]
        params.tensor_split = shares + [0.0] * (len(params.tensor_split) - len(shares))
    if args.temp is not None:
        params.sampling.temp = args.temp
    if args.top_p is not None:
        params.sampling.top_p = args.top_p
    params.default_template_kwargs = {k: json.dumps(v) for k, v in args.chat_template_kwargs.items()}
    params.hostnames, params.port = [args.host], args.port
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as key_file:
            params.api_keys = [line.strip() for line in key_file if line.strip()]
    elif os.environ.get("LLAMA_API_KEY"):     # as llama-server reads it (common/arg.cpp: set_env("LLAMA_API_KEY"))
        params.api_keys = [key for key in os.environ["LLAMA_API_KEY"].split(",") if key]
    # llama-server's own default: 4 slots sharing one unified KV cache of --ctx-size (the bindings default to
    # 1 slot, which would queue the benchmark's concurrent streams).
    params.n_parallel = args.parallel or SERVER_DEFAULT_SLOTS
    params.kv_unified = True
    if args.cache_ram is not None:
        params.cache_ram_mib = args.cache_ram
    if args.ctx_checkpoints is not None:
        params.n_ctx_checkpoints = args.ctx_checkpoints
    if args.fit is not None:
        params.fit_params = args.fit == "on"
    if args.verbosity is not None:
        params.verbosity = args.verbosity
    if args.threads is not None:
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    return params


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    on_stop_signals(lambda *_: stop.set())
    import xllamacpp as xlc

    server = xlc.Server(params_from_args(args))   # loads the model, then serves HTTP on its own threads
    print(f"gptoss: serving on {server.listening_address}", file=sys.stderr, flush=True)
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Place one model on one machine: what goes where, at which context, or why it cannot. A backend declares how
its engine offloads (experts per layer, whole layers, or none: the whole model on GPUs), and is placed by that."""
from __future__ import annotations

import math

from dataclasses import dataclass, replace

from gptoss_deploy.planner.catalog import MXFP4_BYTES_PER_PARAM, SLIDING_WINDOW, Artifact, ModelSpec
from gptoss_deploy.planner.devices import UNSUPPORTED, vllm_support
from gptoss_deploy.planner.hardware import Gpu, HardwareReport
from gptoss_deploy.planner.memory import (
    MIN_HEADROOM_BYTES, OLLAMA_RUNTIME_BYTES, DeviceUse, headroom_bytes, kv_cache_bytes,
    llamacpp_compute_bytes,
)
from gptoss_deploy.planner.units import GIB, MIB, gib
from gptoss_deploy.planner.vendors import GPU_VENDORS

# Offload kinds: llama.cpp keeps MoE experts of some layers in RAM (--n-cpu-moe); Ollama runs whole layers on the
# CPU (num_gpu); vLLM needs the whole model in GPU memory.
EXPERTS, LAYERS, WHOLE_MODEL = "experts", "layers", "whole_model"
MIN_CONTEXT = 4096
LLAMACPP_UBATCHES = (2048, 512)       # 2048 for prefill speed (G15396); 512 saves ~2 GB of compute buffers
# -ub 2048 speeds prefill up to 4x, most of all with experts in RAM (fewer weight copies to the GPU per
# prompt): worth up to two more layers of experts in RAM.
UBATCH_2048_EXTRA_CPU_LAYERS = 2
OLLAMA_NUM_BATCH = 512                # Ollama's default num_batch
LLAMACPP_SLOTS = 4                    # llama-server's default --parallel (each copy)
# llama-server keeps in RAM, beyond the model: the prompts of idle slots, up to --cache-ram (default 8192 MiB), and
# per slot up to --ctx-checkpoints (default 32) snapshots of a sliding-window model's SWA cache, at most one per
# 8192 tokens (--checkpoint-min-step) (LCS; the defaults of the xllamacpp 2026.10 engine we ship). Left to their
# defaults they grow after start-up into RAM no plan counted: plans set both from the RAM they leave.
LLAMACPP_CHECKPOINTS_MAX = 32
LLAMACPP_CHECKPOINT_MIN_STEP = 8192
HOST_CACHE_SPARE_BYTES = 1 * GIB      # RAM left beside the caches, beyond the headroom: a tight plan gets none
# ...and a tenth of the machine's RAM for everything else: measured against the total, which does not move between
# two runs (free RAM does: a rerun of `up` sees the running server's), the caches stay what they were.
HOST_CACHE_RESERVE_FRACTION = 0.10
PROMPT_CACHE_STEPS = tuple(size * MIB for size in (8192, 4096, 2048, 1024, 512))
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)  # must divide the 8 KV heads (VR)
# vLLM: 120b on one 80 GB H100 fails with the defaults (0.90, 8192 batched tokens) and runs with
# --gpu-memory-utilization 0.95 --max-num-batched-tokens 1024 (VR).
VLLM_MAX_UTILIZATION = 0.95
# ...but "when running TP2 on H100, set your gpu memory utilization below 0.95 as that will also cause OOM" (VR):
# Hopper groups of 2 or more take vLLM's default.
VLLM_HOPPER_TP_MAX_UTILIZATION = 0.90
# What vLLM's start-up memory profile holds on each GPU besides the weights and the KV cache: a dummy batch's peak
# activations (by --max-num-batched-tokens), CUDA graphs, and buffers of the MXFP4 MoE kernels that grow with the
# expert weights. Fitted to two published single-GPU figures: vllm#27508 measured "Available KV cache memory: 1.71 GiB"
# for 120b on one H100 at 0.95 and 1024 batched tokens (9.6 GiB beyond the 64.38 GiB of weights), and 20b serves a
# 128k context (3 GiB of KV cache) on one 24 GB L4, which leaves it at most ~4.5 GiB. The split between the three
# terms, and the activations at 8192 batched tokens, are estimates; `gptoss status` shows what vLLM itself reported.
VLLM_ACTIVATION_BYTES = {8192: 6 * GIB, 1024: 1 * GIB}
VLLM_CUDA_GRAPH_BYTES = 1 * GIB
VLLM_EXPERT_BUFFER_SHARE = 0.126
# vLLM's CPU build on Xeon 6 (VR, gpt-oss-20b.yaml's cpu override): --max-num-batched-tokens 16384. The recipe's
# --gpu-memory-utilization 0.8 is, on the CPU, the share of a NUMA node's memory vLLM reserves (vllm 0.33
# v1/worker/cpu_worker.py: the host's node, even inside a container's limit), so plans size the KV cache instead
# (--kv-cache-memory-bytes, which overrides it). The activations are an estimate: the GPU figure at 8192 tokens,
# scaled by the tokens (no CUDA graphs on the CPU).
VLLM_CPU_BATCHED_TOKENS = 16384


@dataclass(frozen=True)
class Placement:
    backend: str
    offload: str                             # EXPERTS | LAYERS | WHOLE_MODEL
    model: ModelSpec
    artifact: Artifact
    context_length: int
    devices: tuple[DeviceUse, ...]
    read_bytes_per_token: dict[str, float]   # device -> bytes read per generated token
    cpu_layers: int = 0                      # layers whose experts (llama.cpp) or whole layer (Ollama) run on CPU
    ubatch: int = 512
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1              # copies of the model: vLLM's per TP group, llama.cpp's one per GPU
    pipeline_parallel_size: int = 1          # vLLM over several nodes: one stage per node, TP within each
    tensor_split: tuple[float, ...] = ()
    gpu_layers: int | None = None
    gpu_memory_utilization: float | None = None
    max_num_batched_tokens: int | None = None
    compute_capability: str | None = None    # vLLM: the GPUs' lowest (AMD: gfx target), which picks kernels and flags
    prompt_cache_bytes: int = 0              # llama-server: --cache-ram, per server
    context_checkpoints: int | None = None   # llama-server: --ctx-checkpoints per slot; None: the engine's own


@dataclass(frozen=True)
class Rejection:
    backend: str
    model: ModelSpec
    reason: str
    resource: str          # the binding constraint: "GPU memory", "RAM", "GPU support", ...


def _active_expert_bytes_per_layer(model: ModelSpec) -> float:
    return model.experts_per_token * model.params_per_expert * MXFP4_BYTES_PER_PARAM


def _dense_read_bytes(model: ModelSpec, artifact: Artifact) -> float:
    """Dense tensors read per token: everything but the embedding table, which is only looked up."""
    return artifact.dense_bytes(model) * (model.dense_params - model.embedding_params) / model.dense_params


def _embedding_bytes(model: ModelSpec, artifact: Artifact) -> float:
    return artifact.dense_bytes(model) * model.embedding_params / model.dense_params


def context_steps(target: int) -> list[int]:
    """The target, then halvings down to MIN_CONTEXT: the first one that fits wins."""
    steps, context = [target], target
    while context // 2 >= MIN_CONTEXT:
        context //= 2
        steps.append(context)
    return steps


def _gpu_name(gpus: list[Gpu]) -> str:
    return f"{len(gpus)} GPUs" if len(gpus) > 1 else gpus[0].name


def _cpu_available(hw: HardwareReport, gpu_bytes_on_unified: int) -> int:
    """RAM left for model data; on unified memory what the GPU holds comes out of the same pool."""
    return hw.memory.available_bytes - gpu_bytes_on_unified


# --- experts per layer (llama.cpp) ----------------------------------------------------------------

def fit_expert_offload(backend: str, model: ModelSpec, hw: HardwareReport, context_target: int,
                       artifact: Artifact) -> Placement | Rejection:
    if not hw.gpus:
        return _fit_cpu_only(backend, model, artifact, hw, context_target)
    for context in context_steps(context_target):
        copied = _copies(backend, model, artifact, hw, context)
        if copied:
            return copied
        big, small = (_experts_with_gpus(backend, model, artifact, hw, context, ub) for ub in LLAMACPP_UBATCHES)
        if big and (small is None or big.cpu_layers <= small.cpu_layers + UBATCH_2048_EXTRA_CPU_LAYERS):
            return big
        if small:
            return small
    need = (artifact.loaded_bytes + kv_cache_bytes(model, MIN_CONTEXT) + artifact.buffers(llamacpp_compute_bytes(512))
            + sum(GPU_VENDORS[g.vendor].runtime_bytes for g in hw.gpus))
    return Rejection(backend, model, (
        f"{model.name} on {backend} needs {gib(need)} of memory at least (weights, KV cache, compute buffers) "
        f"plus headroom; {_free_summary(hw)}"), "RAM" if hw.gpus[0].unified_memory else "GPU memory + RAM")


def _free_summary(hw: HardwareReport) -> str:
    if any(g.unified_memory for g in hw.gpus):
        return f"this machine has {gib(hw.memory.available_bytes)} of unified memory available"
    return (f"this machine has {gib(sum(g.memory_free_bytes for g in hw.gpus))} free on {_gpu_name(hw.gpus)} "
            f"and {gib(hw.memory.available_bytes)} of RAM available")


def _experts_with_gpus(backend, model, artifact, hw, context, ubatch) -> Placement | None:
    """Smallest --n-cpu-moe that makes the model fit the GPUs at this context and ubatch, or None."""
    gpus = list(hw.gpus)
    kv = kv_cache_bytes(model, context, sliding_tokens=128 + ubatch)  # llama.cpp keeps window + ubatch SWA cells
    compute = artifact.buffers(llamacpp_compute_bytes(ubatch))
    room = [g.memory_free_bytes - GPU_VENDORS[g.vendor].runtime_bytes - headroom_bytes(g.memory_free_bytes) - compute
            for g in gpus]
    if min(room) <= 0:
        return None
    embedding = _embedding_bytes(model, artifact)   # token embeddings stay in RAM in llama.cpp
    per_layer_experts = artifact.expert_bytes_per_layer(model)
    overflow = artifact.loaded_bytes - embedding + kv - sum(room)
    cpu_layers = max(0, math.ceil(overflow / per_layer_experts))
    if cpu_layers > model.layers:
        return None
    gpu_weights = artifact.loaded_bytes - embedding - cpu_layers * per_layer_experts
    unified = any(g.unified_memory for g in gpus)
    gpu_total = gpu_weights + kv + compute * len(gpus)
    cpu = DeviceUse("cpu", hw.cpu.model, _cpu_available(hw, int(gpu_total) if unified else 0),
                    weights_bytes=int(embedding + cpu_layers * per_layer_experts),
                    headroom_bytes=headroom_bytes(hw.memory.total_bytes))
    if not cpu.fits:
        return None
    shares = [r / sum(room) for r in room]
    devices = tuple(
        DeviceUse(f"gpu{g.index}", g.name, g.memory_free_bytes, weights_bytes=int(gpu_weights * s),
                  kv_cache_bytes=int(kv * s), compute_bytes=compute, runtime_bytes=GPU_VENDORS[g.vendor].runtime_bytes,
                  headroom_bytes=headroom_bytes(g.memory_free_bytes))
        for g, s in zip(gpus, shares)
    ) + (cpu,)
    active = _active_expert_bytes_per_layer(model)
    gpu_read = _dense_read_bytes(model, artifact) + (model.layers - cpu_layers) * active
    reads = {f"gpu{g.index}": gpu_read * s for g, s in zip(gpus, shares)}
    reads["cpu"] = cpu_layers * active
    return Placement(backend, EXPERTS, model, artifact, context, devices, reads, cpu_layers=cpu_layers,
                     ubatch=ubatch, tensor_split=tuple(round(s, 3) for s in shares) if len(gpus) > 1 else ())


def _copies(backend, model, artifact, hw, context) -> Placement | None:
    """Where each of several GPUs holds the whole model at CONTEXT, a copy on each (one llama-server per GPU
    behind one address) rather than one copy split over them: the same speed per stream, streams side by side."""
    if len(hw.gpus) < 2 or any(g.unified_memory for g in hw.gpus):
        return None
    for ubatch in LLAMACPP_UBATCHES:
        alone = [_experts_with_gpus(backend, model, artifact, hw.model_copy(update={"gpus": [gpu]}), context, ubatch)
                 for gpu in hw.gpus]
        whole = [p for p in alone if p and not p.cpu_layers]
        if len(whole) < 2:
            continue
        cpu = whole[0].devices[-1]      # each copy keeps its token embeddings in RAM
        cpu = replace(cpu, weights_bytes=cpu.weights_bytes * len(whole))
        if cpu.fits:
            gpus = tuple(device for placed in whole for device in placed.devices[:-1])
            return replace(whole[0], devices=gpus + (cpu,), data_parallel_size=len(whole))
    return None


def _fit_cpu_only(backend, model, artifact, hw, context_target) -> Placement | Rejection:
    for context in context_steps(context_target):
        cpu = DeviceUse("cpu", hw.cpu.model, hw.memory.available_bytes, weights_bytes=artifact.loaded_bytes,
                        kv_cache_bytes=kv_cache_bytes(model, context, sliding_tokens=128 + 512),
                        compute_bytes=artifact.buffers(llamacpp_compute_bytes(512)),
                        headroom_bytes=headroom_bytes(hw.memory.total_bytes))
        if cpu.fits:
            read = _dense_read_bytes(model, artifact) + model.layers * _active_expert_bytes_per_layer(model)
            return Placement(backend, EXPERTS, model, artifact, context, (cpu,), {"cpu": read},
                             cpu_layers=model.layers, ubatch=512)
    return Rejection(backend, model, (
        f"{model.name} on {backend} needs {gib(cpu.needed_bytes)} of RAM on this CPU-only machine; "
        f"{gib(hw.memory.available_bytes)} is available"), "RAM")


def with_host_caches(placed: Placement | Rejection, hw: HardwareReport) -> Placement | Rejection:
    """PLACED with llama-server's host caches sized from the RAM it leaves: context checkpoints first (each saves
    re-reading a conversation whose earlier turns changed), then the prompt cache in PROMPT_CACHE_STEPS (at most
    llama-server's default); none on unified memory (the RAM is the GPU's) or where less than HOST_CACHE_SPARE_BYTES
    would be left."""
    if isinstance(placed, Rejection):
        return placed
    *gpus, cpu = placed.devices
    servers = placed.data_parallel_size
    spare = min(cpu.available_bytes - cpu.needed_bytes - HOST_CACHE_SPARE_BYTES,
                hw.memory.total_bytes * (1 - HOST_CACHE_RESERVE_FRACTION) - cpu.needed_bytes)
    if any(g.unified_memory for g in hw.gpus) or spare <= 0:
        return replace(placed, prompt_cache_bytes=0, context_checkpoints=0)
    model = placed.model
    one_round = servers * LLAMACPP_SLOTS * model.sliding_layers * model.kv_bytes_per_token_per_layer * \
        (SLIDING_WINDOW + placed.ubatch)                              # one checkpoint in every slot of every server
    wanted = min(LLAMACPP_CHECKPOINTS_MAX, math.ceil(placed.context_length / LLAMACPP_CHECKPOINT_MIN_STEP))
    checkpoints = min(wanted, int(spare // one_round)) if one_round else 0
    spare -= checkpoints * one_round
    prompt_cache = next((size for size in PROMPT_CACHE_STEPS if servers * size <= spare), 0)
    cpu = replace(cpu, cache_bytes=checkpoints * one_round + servers * prompt_cache)
    return replace(placed, devices=(*gpus, cpu), prompt_cache_bytes=prompt_cache, context_checkpoints=checkpoints)


# --- whole layers (Ollama) ------------------------------------------------------------------------

def fit_layer_offload(backend: str, model: ModelSpec, hw: HardwareReport, context_target: int,
                      artifact: Artifact) -> Placement | Rejection:
    """Whole layers (Ollama's num_gpu), not experts: what does not fit the GPU runs on the CPU."""
    compute = artifact.buffers(llamacpp_compute_bytes(OLLAMA_NUM_BATCH))
    embedding = _embedding_bytes(model, artifact)
    per_layer_weights = (artifact.loaded_bytes - embedding) / model.layers
    active = _active_expert_bytes_per_layer(model)
    per_layer_read = (_dense_read_bytes(model, artifact) + model.layers * active) / model.layers
    gpus = list(hw.gpus)
    room = [g.memory_free_bytes - OLLAMA_RUNTIME_BYTES - headroom_bytes(g.memory_free_bytes) - compute
            for g in gpus]
    unified = any(g.unified_memory for g in gpus)
    for context in context_steps(context_target):
        kv = kv_cache_bytes(model, context, sliding_tokens=128 + OLLAMA_NUM_BATCH)
        per_layer = per_layer_weights + kv / model.layers
        gpu_layers = min(model.layers, int(sum(r for r in room if r > 0) // per_layer)) if gpus else 0
        cpu_layers = model.layers - gpu_layers
        on_gpu = gpu_layers * per_layer
        cpu = DeviceUse("cpu", hw.cpu.model,
                        _cpu_available(hw, int(on_gpu + compute) if unified and gpu_layers else 0),
                        weights_bytes=int(embedding + cpu_layers * per_layer_weights),
                        kv_cache_bytes=int(kv * cpu_layers / model.layers),
                        compute_bytes=compute if cpu_layers else 0,
                        headroom_bytes=headroom_bytes(hw.memory.total_bytes))
        if not cpu.fits:
            continue
        used_gpus = [(g, r) for g, r in zip(gpus, room) if r > 0] if gpu_layers else []
        shares = [r / sum(r for _, r in used_gpus) for _, r in used_gpus]
        devices = tuple(
            DeviceUse(f"gpu{g.index}", g.name, g.memory_free_bytes,
                      weights_bytes=int(gpu_layers * per_layer_weights * s),
                      kv_cache_bytes=int(kv * gpu_layers / model.layers * s), compute_bytes=compute,
                      runtime_bytes=OLLAMA_RUNTIME_BYTES, headroom_bytes=headroom_bytes(g.memory_free_bytes))
            for (g, _), s in zip(used_gpus, shares)
        ) + (cpu,)
        reads = {f"gpu{g.index}": gpu_layers * per_layer_read * s for (g, _), s in zip(used_gpus, shares)}
        reads["cpu"] = cpu_layers * per_layer_read
        return Placement(backend, LAYERS, model, artifact, context, devices, reads, cpu_layers=cpu_layers,
                         ubatch=OLLAMA_NUM_BATCH, gpu_layers=gpu_layers)
    return Rejection(backend, model, (
        f"{model.name} on {backend} needs {gib(artifact.loaded_bytes + compute)} of memory at least plus the KV cache; "
        f"{_free_summary(hw) if gpus else f'{gib(hw.memory.available_bytes)} of RAM is available'}"), "RAM")


# --- the whole model on GPUs (vLLM) --------------------------------------------------------------

def vllm_utilization(gpu: Gpu, tensor_parallel_size: int = 1) -> float:
    """vLLM refuses to start unless utilization x total <= free: take what is free, at most 0.95 (0.90 for a
    Hopper group, VR), whose remaining 5% is the headroom."""
    ceiling = VLLM_MAX_UTILIZATION
    if tensor_parallel_size > 1 and gpu.vendor == "nvidia" and (gpu.compute_capability or "").startswith("9."):
        ceiling = VLLM_HOPPER_TP_MAX_UTILIZATION
    fraction = (gpu.memory_free_bytes - MIN_HEADROOM_BYTES) / gpu.memory_total_bytes
    return min(ceiling, int(fraction * 100) / 100)


def _vllm_engine_bytes(model: ModelSpec, artifact: Artifact, group: int, batched: int,
                       graphs: int = VLLM_CUDA_GRAPH_BYTES) -> float:
    """vLLM's own memory on each GPU of a group (GRAPHS=0: the CPU), beyond weights and KV cache
    (VLLM_EXPERT_BUFFER_SHARE); activations of a batch size not measured scale from 8192 tokens'."""
    activations = VLLM_ACTIVATION_BYTES.get(batched, VLLM_ACTIVATION_BYTES[8192] * batched / 8192)
    return artifact.buffers(activations + graphs + VLLM_EXPERT_BUFFER_SHARE * artifact.expert_bytes(model) / group)


def _vllm_fixed_bytes(model: ModelSpec, artifact: Artifact, gpu: Gpu, group: int, batched: int) -> float:
    """What each GPU of a group (tensor parallel, and pipeline stages over nodes) holds before the KV cache."""
    return (artifact.loaded_bytes / group + _vllm_engine_bytes(model, artifact, group, batched)
            + GPU_VENDORS[gpu.vendor].runtime_bytes)


def _replicas(gpus: list[Gpu], tp: int, batched: int, kv_per_gpu: float, model: ModelSpec,
              artifact: Artifact) -> tuple[int, float]:
    """How many copies of a TP group the GPUs hold at one --gpu-memory-utilization (data parallelism), and that
    utilization: the most copies whose every GPU keeps the group's KV cache."""
    for copies in range(len(gpus) // tp, 0, -1):
        used = gpus[:copies * tp]
        utilization = min(vllm_utilization(g, tp) for g in used)
        if all(utilization * g.memory_total_bytes - _vllm_fixed_bytes(model, artifact, g, tp, batched) >= kv_per_gpu
               for g in used):
            return copies, utilization
    return 1, vllm_utilization(gpus[tp - 1], tp)


def _lowest_arch(gpus: list[Gpu]) -> str | None:
    """The architecture the group's kernels are chosen for: the lowest compute capability (AMD: the gfx target)."""
    def order(arch: str) -> tuple:
        return tuple(int(part) for part in arch.split(".")) if arch.replace(".", "").isdigit() else (arch,)
    archs = [g.compute_capability for g in gpus if g.compute_capability]
    return min(archs, key=order) if archs else None


def fit_whole_model(backend: str, model: ModelSpec, hw: HardwareReport, context_target: int,
                    artifact: Artifact) -> Placement | Rejection:
    """The whole model in GPU memory (vLLM cannot offload experts efficiently): the smallest tensor-parallel group
    that holds it, copied onto the remaining GPUs (data parallelism) where they hold it too."""
    if not hw.gpus:       # the backend serves on the CPU (it said so: unsupported() let this machine through)
        return _fit_whole_model_in_ram(backend, model, hw, context_target, artifact)
    unsupported = [why for level, why in map(vllm_support, hw.gpus) if level == UNSUPPORTED]
    if unsupported:
        return Rejection(backend, model, f"{backend} cannot serve gpt-oss here: {unsupported[0]}", "GPU support")
    if hw.nodes > 1 and hw.gpus_per_node() not in TENSOR_PARALLEL_SIZES:
        return Rejection(backend, model, f"{backend} splits each node's GPUs by tensor parallelism, which takes 1, 2, "
                         f"4 or 8; these nodes have {hw.gpus_per_node()}", "GPU count")
    if hw.nodes > 1:
        one_node = hw.model_copy(update={"nodes": 1, "gpus": hw.gpus[:hw.gpus_per_node()]})
        alone = fit_whole_model(backend, model, one_node, context_target, artifact)
        if isinstance(alone, Placement) and alone.context_length >= context_target:
            return Rejection(backend, model, (
                f"one node ({_gpu_name(one_node.gpus)}) holds {model.name} at {alone.context_length:,} tokens: "
                f"plan it without --nodes and run {hw.nodes} replicas (`gptoss export --replicas {hw.nodes}`), which "
                f"serve {hw.nodes} times the streams a pipeline over {hw.nodes} nodes would"), "nodes")
    gpus = sorted(hw.gpus, key=lambda g: g.memory_free_bytes, reverse=True)
    options = []
    # Over nodes, one group of every GPU: tensor parallel within a node, a pipeline stage per node (vLLM's advice).
    groups = [len(gpus)] if hw.nodes > 1 else [t for t in TENSOR_PARALLEL_SIZES if t <= len(gpus)]
    for group in groups:
        tp = group // hw.nodes
        weakest = gpus[group - 1]
        budget = vllm_utilization(weakest, tp) * weakest.memory_total_bytes
        for batched in VLLM_ACTIVATION_BYTES:
            kv_room = (budget - _vllm_fixed_bytes(model, artifact, weakest, group, batched)) * group
            context = min(context_target, _context_in(model, kv_room))
            if context >= MIN_CONTEXT:
                options.append((context >= context_target, -group, batched, context))
        if any(o[0] for o in options):
            break
    if not options:
        need = artifact.loaded_bytes + _vllm_engine_bytes(model, artifact, 1, 1024) \
            + GPU_VENDORS[gpus[0].vendor].runtime_bytes + kv_cache_bytes(model, MIN_CONTEXT)
        return Rejection(backend, model, (
            f"{model.name} on {backend} needs {gib(need)} of GPU memory; this machine has "
            f"{gib(sum(g.memory_free_bytes for g in gpus))} free on {_gpu_name(gpus)}"), "GPU memory")
    _, neg_group, batched, context = max(options)
    group = -neg_group
    kv_per_gpu = kv_cache_bytes(model, context) / group
    copies, utilization = _replicas(gpus, group, batched, kv_per_gpu, model, artifact)
    used = gpus[:copies * group]
    devices = tuple(
        DeviceUse(f"gpu{g.index}", g.name, g.memory_free_bytes,
                  weights_bytes=int(artifact.loaded_bytes / group), kv_cache_bytes=int(kv_per_gpu),
                  compute_bytes=int(_vllm_engine_bytes(model, artifact, group, batched)),
                  runtime_bytes=GPU_VENDORS[g.vendor].runtime_bytes,
                  headroom_bytes=int(g.memory_free_bytes - utilization * g.memory_total_bytes))
        for g in used
    )
    read = _dense_read_bytes(model, artifact) + model.layers * _active_expert_bytes_per_layer(model)
    reads = {f"gpu{g.index}": read / group for g in used[:group]}    # one stream runs on one copy
    return Placement(backend, WHOLE_MODEL, model, artifact, context, devices, reads,
                     tensor_parallel_size=group // hw.nodes, pipeline_parallel_size=hw.nodes, data_parallel_size=copies, gpu_memory_utilization=utilization, max_num_batched_tokens=batched,
                     compute_capability=_lowest_arch(used))


def _context_in(model: ModelSpec, kv_room: float, sliding_tokens: int = SLIDING_WINDOW) -> int:
    """The longest context, in steps of 1,024 tokens, whose KV cache fits KV_ROOM bytes (0: none does), sliding
    layers holding SLIDING_TOKENS each."""
    sliding = model.sliding_layers * model.kv_bytes_per_token_per_layer * sliding_tokens
    per_token = model.full_attention_layers * model.kv_bytes_per_token_per_layer
    return int((kv_room - sliding) // per_token) // 1024 * 1024 if kv_room > sliding else 0


def _fit_whole_model_in_ram(backend: str, model: ModelSpec, hw: HardwareReport, context_target: int,
                            artifact: Artifact) -> Placement | Rejection:
    """The whole model in RAM (vLLM's CPU build), its KV cache what vLLM checks at start-up that a request of the
    planned context needs: sliding layers hold the window and a batch of tokens in flight (vllm 0.33
    v1/kv_cache_interface.py), rounded up to a GiB."""
    available, headroom = hw.memory.available_bytes, headroom_bytes(hw.memory.total_bytes)
    engine = _vllm_engine_bytes(model, artifact, 1, VLLM_CPU_BATCHED_TOKENS, graphs=0)
    in_flight = SLIDING_WINDOW - 1 + VLLM_CPU_BATCHED_TOKENS
    room = available - headroom - artifact.loaded_bytes - engine
    context = min(context_target, _context_in(model, room - GIB, in_flight))      # a GiB: the rounding below
    if context < MIN_CONTEXT:
        need = artifact.loaded_bytes + engine + kv_cache_bytes(model, MIN_CONTEXT, in_flight) + headroom
        return Rejection(backend, model, f"{model.name} on {backend}'s CPU build needs {gib(need)} of RAM; "
                         f"{gib(available)} is available", "RAM")
    kv = math.ceil(kv_cache_bytes(model, context, in_flight) / GIB) * GIB
    device = DeviceUse("cpu", hw.cpu.model, available, weights_bytes=artifact.loaded_bytes,
                       kv_cache_bytes=kv, compute_bytes=int(engine),
                       headroom_bytes=headroom)
    read = _dense_read_bytes(model, artifact) + model.layers * _active_expert_bytes_per_layer(model)
    return Placement(backend, WHOLE_MODEL, model, artifact, context, (device,), {"cpu": read},
                     max_num_batched_tokens=VLLM_CPU_BATCHED_TOKENS)


FITTERS = {EXPERTS: fit_expert_offload, LAYERS: fit_layer_offload, WHOLE_MODEL: fit_whole_model}

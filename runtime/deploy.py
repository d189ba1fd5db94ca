"""Bring a plan up as a supervised local server, find it again, take it down: the Deployment lifecycle."""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import psutil

from gptoss_deploy.backends import get_backend
from gptoss_deploy.backends.addresses import is_loopback, safe_name
from gptoss_deploy.backends.base import API_KEY_ENV, LocalBackend, ServerLaunch, UpOptions
from gptoss_deploy.backends.masking import masked_env, secret_name, url_password
from gptoss_deploy.planner.calibration import machine_fingerprint, machine_words
from gptoss_deploy.planner.documents import PlanDocument, Predicted
from gptoss_deploy.planner.errors import BackendError, Interrupted, UsageError
from gptoss_deploy.planner.gguf_info import GgufInfo
from gptoss_deploy.planner.hardware import HardwareReport
from gptoss_deploy.runtime.calibrations import file_yardstick, keep, measurement_of
from gptoss_deploy.runtime.engine_memory import compare
from gptoss_deploy.runtime.process import (POLL_INTERVAL_S, CannotBind, alive, create_time, last_run_lines,
                                            port_holder, port_in_use, spawn, stop_grace_s, stop_group, wait_until)
from gptoss_deploy.runtime.records import Benchmark, Deployment, Endpoint
from gptoss_deploy.runtime.recovery import marker
from gptoss_deploy.runtime.state import StateStore

Progress = Callable[[str], None]
STATUS_LOCK_WAIT_S = 5.0         # commands hold the lock only to change records
OTHER_LAUNCHER_WAIT_S = 900.0   # another `gptoss-up` may be loading a big model: wait for it, then reuse its server


def deployment_name(doc: PlanDocument, launch: ServerLaunch) -> str:
    return safe_name(f"{launch.served_model}-{doc.backend}")


def server_launch(doc: PlanDocument, options: UpOptions, hardware: HardwareReport | None,
                  gguf: GgufInfo | None = None) -> ServerLaunch:
    """What `up` would run for DOC on HARDWARE: the adapter's decision, checked (installed, key rules), not started."""
    return get_backend(doc.backend).server_launch(plan=doc, options=options, hardware=hardware, gguf=gguf)


def up(doc: PlanDocument, options: UpOptions, store: StateStore, hardware: HardwareReport | None,
       gguf: GgufInfo | None = None, progress: Progress = lambda _: None) -> tuple[Deployment, bool]:
    """Start DOC on HARDWARE, this machine (or find it running). Returns the deployment record and whether it was
    already running."""
    stop_grace_s()                             # checked now: a bad value must not surface while cleaning up
    backend = get_backend(doc.backend)
    if backend.cloud:
        if options.host or options.port:
            raise UsageError(f"--host and --port place a server on this machine; {backend.title} serves from the "
                             "cloud at its own address: drop them")
        return _up_cloud(backend, doc, options, store, progress)
    launch = backend.server_launch(plan=doc, options=options, hardware=hardware, gguf=gguf)
    if launch.unavailable:
        raise BackendError(launch.unavailable)
    name = options.name or deployment_name(doc, launch)

    def fresh() -> Deployment:
        _check_port(launch, store)
        _apply_api_key(launch, options, store, name, backend)
        return _record(name, doc, launch, store, _measuring(doc, launch, options, store, hardware, gguf))

    record, reused = _claim(store, name, doc, launch.port, fresh)
    if reused:
        _check_identity(record, store)
        return record, True
    process = None
    try:                                       # the lock is not held from here: a model load takes minutes
        progress(f"fetching {launch.served_model}")
        backend.prepare(launch=launch, plan=doc, progress=progress)
        if launch.argv is not None:
            progress(f"starting {backend.title}")
            process = spawn(launch.argv, {**launch.env, **marker(store.root, record)}, store.log_path(name),
                            _secrets(store.read_secret(name), launch))
            record = _update(store, record, pid=process.pid, pid_started_at=create_time(process.pid))
        progress(f"loading {launch.served_model} (up to {launch.ready_deadline_s:.0f} s)")
        _wait_ready(backend, launch, process, store, name)
        if launch.api_key_file:
            _check_key_required(backend, launch, progress)
        backend.after_ready(launch=launch, plan=doc, progress=progress)
        created = {"cloud_resources": launch.created} if launch.created else {}
        report = _engine_report(backend, doc, store, record) if process else {}
        return _update(store, record, state="running", **created, **report, **_engine(process)), False
    except BaseException:                      # Ctrl-C and a failed state write included: nothing left running
        if process is not None:
            stop_group(process.pid)
        for left in backend.release(created=launch.created, progress=progress):
            progress(f"not undone: {left}")
        _forget_claim(store, record)
        raise


def _forget_claim(store: StateStore, record: Deployment) -> None:
    """Drop the record of a start that failed, unless another command has changed it since."""
    with suppress(BackendError), store.locked():   # the state file may be what failed
        if _same_start(store.records().get(record.name), record):
            store.forget(record.name)


def _same_start(stored: Deployment | None, record: Deployment) -> bool:
    """Whether STORED is still the record of the start RECORD belongs to (recovery may have rewritten it)."""
    return stored is not None and (stored.launcher_pid, stored.launcher_started_at, stored.created_at) == \
        (record.launcher_pid, record.launcher_started_at, record.created_at)


def _launcher() -> dict:
    """Who is starting a deployment: when it dies mid-start, nobody will finish, and status cleans up."""
    return {"launcher_pid": os.getpid(), "launcher_started_at": create_time(os.getpid())}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _claim(store: StateStore, name: str, doc: PlanDocument, port: int | None,
           fresh: Callable[[], Deployment]) -> tuple[Deployment, bool]:
    """Record NAME as starting (FRESH checks and makes the record), under the lock. Returns the record, and whether
    a deployment of this plan already runs (then it is that record). Another launcher still starting the same
    deployment is waited for, and what it started reused."""
    give_up = time.monotonic() + OTHER_LAUNCHER_WAIT_S
    while True:
        with store.locked():
            existing = store.records().get(name)
            if existing and _running(existing):
                if existing.plan.launch != doc.launch or existing.port != port:
                    raise BackendError(f"deployment {name} is running with another plan or port; "
                                       f"`gptoss down {name}` first, or choose another --name")
                if existing.state != "starting":
                    return existing, True
            else:
                if existing:
                    _clean_stale(store, existing)
                record = fresh()
                store.put(record)              # recorded at once: a killed launcher leaves a findable claim
                return record, False
        if time.monotonic() > give_up:
            raise BackendError(f"deployment {name} is still starting in another gptoss-up after "
                               f"{OTHER_LAUNCHER_WAIT_S:.0f} s; wait for it, or `gptoss down {name}`")
        time.sleep(POLL_INTERVAL_S)


def _update(store: StateStore, record: Deployment, **changes) -> Deployment:
    """Record CHANGES to a deployment this launcher is starting, unless it was taken down meanwhile."""
    with store.locked():
        if not _same_start(store.records().get(record.name), record):
            raise BackendError(f"deployment {record.name} was taken down while it started")
        record = Deployment.model_validate({**record.to_json(), **changes})
        store.put(record)
        return record


def _up_cloud(backend, doc: PlanDocument, options: UpOptions, store: StateStore,
              progress: Progress) -> tuple[Deployment, bool]:
    """A cloud endpoint: checked (SDK, credentials, region, access) and, where the service needs it, created."""
    name = options.name or safe_name(f"{doc.model}-{doc.backend}")

    def fresh() -> Deployment:
        if backend.unavailable():
            raise BackendError(backend.unavailable())
        return Deployment(name=name, backend=doc.backend, model=doc.model, pid=None, state="starting", plan=doc,
                          benchmark=None, warnings=[], log=None, **_launcher())

    record, reused = _claim(store, name, doc, None, fresh)
    if reused:
        return record, True
    try:                                       # unlocked: creating an endpoint can take minutes
        done = backend.provision(plan=doc, options=options, progress=progress)
        endpoint = Endpoint(**asdict(done.endpoint), api_key_file=None)        # the service holds the key
        return _update(store, record, state="ready", created_at=_now(), protocol=done.protocol, region=done.region,
                       endpoint=endpoint, cloud_resources=done.cloud_resources, account=done.account,
                       identity=done.identity, warnings=done.warnings, **done.coordinates), False
    except BaseException:
        _forget_claim(store, record)
        raise


MIN_SECRET_CHARS = 4   # masking a shorter value ("1", "on") would mangle the log, and such a value guards nothing


def _secrets(api_key: str | None, launch: ServerLaunch) -> list[str]:
    """What must never reach a log, masked by value wherever it shows: the API key, the values of secret-looking
    variables in the environment the server inherits, passwords inside URLs there, and the Hugging Face token
    from its file (a server downloading from the hub uses it too)."""
    from huggingface_hub import get_token

    environment = {**os.environ, **launch.env}
    named = [v for k, v in environment.items() if secret_name(k)]
    passwords = [p for p in map(url_password, environment.values()) if p]
    return [s for s in (api_key, *named, *passwords, get_token()) if s and len(s) >= MIN_SECRET_CHARS]


def _check_port(launch: ServerLaunch, store: StateStore) -> None:
    if launch.argv is None:
        return
    ours = [r.name for r in store.records().values() if r.port == launch.port and _running(r)]
    try:
        if not (ours or port_in_use(launch.host, launch.port)):   # ours: maybe still downloading, not yet bound
            return
    except CannotBind as err:
        raise UsageError(f"--host: {err}; give one of this machine's addresses, 127.0.0.1, or 0.0.0.0") from None
    holder = f"deployment {ours[0]} (`gptoss down {ours[0]}`)" if ours else port_holder(launch.port).describe()
    raise BackendError(f"port {launch.port} is taken by {holder}; stop it or choose another --port")


def _apply_api_key(launch: ServerLaunch, options: UpOptions, store: StateStore, name: str,
                   backend: LocalBackend) -> None:
    """Off loopback a key is required: the user's GPTOSS_API_KEY, or a new one. The server reads it from a file."""
    if launch.argv is None or (is_loopback(launch.host) and not options.api_key):
        return                                # loopback, or a server the user runs (their own rules)
    key = options.api_key or secrets.token_urlsafe(32)
    launch.api_key_file = store.write_secret(name, key)
    backend.use_api_key(launch=launch, key=key)


def _wait_ready(backend: LocalBackend, launch: ServerLaunch, process, store: StateStore, name: str) -> None:
    key = store.read_secret(name)
    log = store.log_path(name)

    def listed() -> list[str] | None:
        return backend.served_models(base_url=launch.base_url, api_key=key)

    wait_until(lambda: listed() is not None, process, launch.ready_deadline_s, "the server", log if process else None)
    if backend.checks_identity_when_ready:
        _require_model(launch.base_url, launch.port, launch.served_model, listed())


def _check_key_required(backend: LocalBackend, launch: ServerLaunch, progress: Progress) -> None:
    """An exposed server must refuse requests without the key: asked, not assumed."""
    if backend.served_models(base_url=launch.base_url, api_key=None) is not None:
        raise BackendError(f"the server on port {launch.port} answers requests without the API key, so it was "
                           "stopped; check the key file and the server's --api-key support")
    progress("checked: requests without the API key are refused")


def _require_model(base_url: str, port: int, model: str, models: list[str] | None) -> None:
    if model not in (models or []):           # someone else's server answers on the port
        raise BackendError(f"the server on port {port} serves {', '.join(models or []) or 'nothing'}, not "
                           f"{model}: another server holds the port; stop it or choose another --port")


def _check_identity(record: Deployment, store: StateStore) -> None:
    models = get_backend(record.backend).served_models(base_url=record.endpoint.base_url,
                                                       api_key=store.read_secret(record.name))
    if models is None and record.pid:          # ours, running, yet silent: say why rather than blame the port
        stopped = _stopped_engine(record)
        if stopped:
            raise BackendError(f"deployment {record.name}'s server (pid {stopped}) is stopped (SIGSTOP or Ctrl-Z): "
                               f"resume it with `kill -CONT {stopped}`, or `gptoss down {record.name}`")
        raise BackendError(f"deployment {record.name} runs but does not answer on port {record.port}; it may be "
                           f"busy: try again, or `gptoss down {record.name}` and start it again")
    _require_model(record.endpoint.base_url, record.port, record.model, models)


def _stopped_engine(record: Deployment) -> int | None:
    """The pid of this deployment's server or its log filter where one is stopped (state T), else None."""
    for pid, started_at in ((record.engine_pid, record.engine_started_at), (record.pid, record.pid_started_at)):
        if pid and alive(pid, started_at):
            with suppress(psutil.Error):
                if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                    return pid
    return None


def _measuring(doc: PlanDocument, launch: ServerLaunch, options: UpOptions, store: StateStore,
               hardware: HardwareReport | None, gguf: GgufInfo | None) -> dict:
    """What the benchmark of a deployment is kept by (runtime.calibrations): the machine, and, for a GGUF of another
    model, the file's own prediction to hold it to."""
    if hardware is None:
        return {}
    yardstick = own_yardstick(doc, launch, options, store.root, hardware, gguf)
    return {"machine": machine_fingerprint(hardware), "hardware": machine_words(hardware),
            **({"yardstick": yardstick} if yardstick else {})}


def own_yardstick(doc: PlanDocument, launch: ServerLaunch, options: UpOptions, state_root: Path,
                  hardware: HardwareReport | None, gguf: GgufInfo | None) -> Predicted | None:
    """For a GGUF of another model (the plan's figures are gpt-oss's), the file's own prediction, calibrated by this
    machine's benchmarks of it unless --no-calibration; None otherwise."""
    if gguf is None or launch.plan_applies or hardware is None:
        return None
    on_gpu = bool(doc.memory and doc.memory.gpu_bytes)       # the launch offloads every layer, or none
    return file_yardstick(gguf, hardware, doc.backend, on_gpu, state_root if options.calibrate else None)


def _record(name: str, doc: PlanDocument, launch: ServerLaunch, store: StateStore, measuring: dict) -> Deployment:
    return Deployment(
        schema_version=1, name=name, backend=doc.backend, model=launch.served_model,
        pid=None, pid_started_at=None, state="starting", host=launch.host, port=launch.port,
        protocol=launch.protocol,
        endpoint=Endpoint(base_url=launch.base_url, model=launch.served_model,
                          api_key_env=API_KEY_ENV if launch.api_key_file else None,
                          api_key_file=str(launch.api_key_file) if launch.api_key_file else None),
        argv=launch.argv, env=masked_env(launch.env), log=str(store.log_path(name)),
        warnings=launch.warnings, plan=doc, benchmark=None, created_at=_now(), **_launcher(),
        **({} if launch.plan_applies else {"plan_applies": False}),   # the JSON says so only where it matters
        **measuring,
    )


def _engine_report(backend: LocalBackend, doc: PlanDocument, store: StateStore, record: Deployment) -> dict:
    """What the engine said at start-up, beside the plan: what it loaded, where that is not what the plan expects
    (then the plan's figures do not apply to it), and its memory, with a warning for each figure far off the plan."""
    lines = last_run_lines(store.log_path(record.name))
    off_plan = backend.loaded_off_plan(plan=doc, log_lines=lines)
    applies = record.plan_applies and off_plan is None
    report = backend.reported_memory(lines)
    memory = compare(doc.memory, report, applies) if report else None
    warnings = [*([off_plan] if off_plan else []), *(memory.warnings if memory else [])]
    return {**({"memory": memory} if memory else {}), **({} if applies == record.plan_applies else
                                                           {"plan_applies": False}),
            **({"warnings": record.warnings + warnings} if warnings else {})}


def _engine(process) -> dict:
    """The server under the log filter that leads its group, watched on its own: it outlives a filter that dies."""
    if process is None:
        return {}
    engines = psutil.Process(process.pid).children()
    return {"engine_pid": engines[0].pid, "engine_started_at": engines[0].create_time()} if engines else {}


def _orphaned(record: Deployment) -> bool:
    """A server still loading whose launcher died (killed mid-start): nobody will finish starting it."""
    return record.state == "starting" and not (record.launcher_pid and
                                               alive(record.launcher_pid, record.launcher_started_at))


def _clean_stale(store: StateStore, record: Deployment) -> None:
    if record.pid:
        _stop_server(record)                   # what is left of its group (an orphaned server)
    store.forget(record.name)


def _stop_server(record: Deployment) -> bool:
    """Stop the group its log filter leads, then the server itself if it outlived that: on Windows a group is
    found from its leader's process tree, which a dead leader no longer shows. Only what the record proves gptoss
    started (a pid with its start time) is signalled: returns whether anything was."""
    if record.pid_started_at is None:
        return False
    stop_group(record.pid, record.pid_started_at)
    if record.engine_pid and record.engine_started_at is not None and \
            alive(record.engine_pid, record.engine_started_at):
        stop_group(record.engine_pid, record.engine_started_at)
    return True


def _running(record: Deployment) -> bool:
    if record.state == "starting":
        return not _orphaned(record)           # its launcher is still at it
    backend = get_backend(record.backend)
    if backend.cloud:
        return True                    # a cloud endpoint is there until `down`; `bench` finds out if it works
    if record.pid:
        return alive(record.pid, record.pid_started_at) or _unlogged(record)
    # A server we did not start (a running Ollama): it counts as long as it answers (without the client that
    # asks, until `down`).
    return bool(backend.sdk_missing()) or backend.served_models(base_url=record.endpoint.base_url,
                                                               api_key=None) is not None


def _unlogged(record: Deployment) -> bool:
    """The server runs on while the process that copied its output into the log has died."""
    return bool(record.engine_pid) and alive(record.engine_pid, record.engine_started_at) and \
        not alive(record.pid, record.pid_started_at)


@dataclass(frozen=True)
class Unlogged:
    name: str
    log: str | None

    def __str__(self) -> str:
        return (f"deployment {self.name} still runs, but the process copying its output to {self.log} exited, "
                f"so its log ends early; `gptoss down {self.name}` and `gptoss-up` again to get the log back")


@dataclass(frozen=True)
class Ended:
    """A deployment found dead: what happened, when it last wrote to its log, and where that log is."""

    name: str
    why: str
    last_output_at: str | None
    log: str | None

    def __str__(self) -> str:
        when = f" (last output {self.last_output_at})" if self.last_output_at else ""
        log = f"; log: {self.log}" if self.log else ""
        return f"deployment {self.name} ended: {self.why}{when}{log}"


def _ended(record: Deployment) -> Ended:
    if record.pid is None:
        why = "the server it used no longer answers"
    elif _orphaned(record):
        why = "its launcher was stopped while the model loaded, so the server was stopped too"
    else:
        why = "its server exited"
    last = None
    if record.log and os.path.exists(record.log):
        last = datetime.fromtimestamp(os.path.getmtime(record.log), timezone.utc).isoformat(timespec="seconds")
    return Ended(record.name, why, last, record.log)


def status(store: StateStore) -> tuple[list[Deployment], list[Ended | Unlogged]]:
    """The deployments that still run, and what to tell about the others: those found dead (their records are
    cleaned up, their logs kept) and those that run on without a log.

    While another command holds the lock, the records are shown as they are, uncleaned.
    """
    notices = []
    try:
        with store.locked(timeout_s=STATUS_LOCK_WAIT_S):
            records = store.records()
            for name, record in list(records.items()):
                if not _running(record):
                    notices.append(_ended(record))
                    _clean_stale(store, record)
                    del records[name]
                elif _unlogged(record):
                    notices.append(Unlogged(name, record.log))
    except BackendError:
        records = store.records()
    return list(records.values()), notices


@dataclass(frozen=True)
class Stopped:
    """What `down` did: the deployments it stopped, and those it kept (the user said no to deleting them)."""
    stopped: list[str]
    kept: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return asdict(self)


def down(store: StateStore, names: list[str] | None, progress: Progress = lambda _: None,
         confirm: Callable[[str], bool] = lambda _: True) -> Stopped:
    """Stop NAMES (None: all). TERM then KILL to each process group; the port is free afterwards.
    A cloud deployment's adapter deletes what this tool created for it, and nothing else, once CONFIRM agrees.
    Returns the names stopped and the names kept (the user said no)."""
    stop_grace_s()
    with store.locked():
        records = store.records()
    unknown = [n for n in names or [] if n not in records]
    if unknown:
        known = ", ".join(records) or "none"
        raise UsageError(f"no deployment named {', '.join(unknown)} (running: {known}; see `gptoss status`)")
    stopped, kept = [], []
    for name in names or list(records):         # unlocked while stopping: a cloud teardown can take minutes
        record = records[name]
        backend = get_backend(record.backend)
        if backend.cloud:
            backend.require_sdk()
            if record.cloud_resources:
                if not confirm(f"delete {backend.resources_summary(record)}?"):
                    kept.append(name)
                    continue
            backend.teardown(record=record, progress=progress)
        elif record.pid:
            if _stop_server(record):
                _wait_port_free(record)
            else:
                progress(f"{name}: process {record.pid} was left alone: the record lacks the start time that proves "
                         "gptoss started it; stop it by hand if it is yours")
        elif record.cloud_resources:           # what an adapter set up in a server that is not ours
            for left in backend.release(created=record.cloud_resources, progress=progress):
                progress(f"{name}: {left}")
        with store.locked():
            store.forget(name)
        stopped.append(name)
    return Stopped(stopped, kept)


def _wait_port_free(record: Deployment, timeout_s: float = 10.0) -> None:
    give_up = time.monotonic() + timeout_s
    with suppress(CannotBind):             # the address is gone from this machine: nothing can hold the port
        while port_in_use(record.host, record.port):
            if time.monotonic() > give_up:
                raise BackendError(f"port {record.port} is still taken after stopping {record.name}: "
                                   f"{port_holder(record.port).describe()}")
            time.sleep(0.1)


@contextmanager
def taken_down_if_interrupted(store: StateStore, record: Deployment) -> Iterator[None]:
    """A deployment this run just started goes down again if the run is interrupted before it is done."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted):
        down(store, [record.name])
        raise


def save_benchmark(store: StateStore, name: str, benchmark: Benchmark) -> Deployment:
    """Record BENCHMARK on the deployment, the plan's prediction and the measurement side by side; where it measured
    the model that runs against a prediction for it, keep it for this machine's next plans (runtime.calibrations)."""
    with store.locked():
        record = store.records()[name].model_copy(update={"benchmark": benchmark})
        measurement = measurement_of(record)
        if measurement is not None:
            keep(store, measurement)
        if measurement is not None or record.measurement is not None:    # never an older run's row beside this one
            record = record.model_copy(update={"measurement": measurement})
        store.put(record)
        return record


def save_fields(store: StateStore, name: str, **fields) -> Deployment:
    """Record FIELDS (a benchmark, the fallback ladder's attempts: validated models) on a running deployment."""
    with store.locked():
        record = store.records()[name].model_copy(update=fields)
        store.put(record)
        return record

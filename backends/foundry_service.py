"""Foundry Local serving one model, as a server gptoss supervises like llama-server:
`python -P -m gptoss_deploy.backends.foundry_service --alias gpt-oss-20b --variant ID --host H --port P`.

Foundry Local's Python SDK (2.x) runs its native runtime in this process: it selects the variant ID the plan
expects where the catalog offers it here (else keeps the catalog's own choice for the execution providers it finds,
and says so), downloads it with progress, loads it and serves it on its OpenAI-compatible web service, until SIGTERM
or SIGINT; then it unloads the model and stops. The line "Foundry Local serves ID" names what it loaded (backends/
foundry.py reads it). Exit 4 when the catalog has no such model (unreachable offline) or the runtime fails, with one
line saying so.
"""
from __future__ import annotations

import argparse
import sys
import threading

from gptoss_deploy.backends.foundry import LOADED
from gptoss_deploy.backends.process_groups import on_stop_signals

NOT_FOUND = 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foundry_service", allow_abbrev=False)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--variant", required=True, help="the catalog model id the plan expects")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


def serve(alias: str, variant: str, url: str, stop: threading.Event) -> int:
    from foundry_local_sdk import Configuration, FoundryLocalManager

    FoundryLocalManager.initialize(Configuration(app_name="gptoss-deploy", web=Configuration.WebService(urls=url)))
    manager = FoundryLocalManager.instance
    model = manager.catalog.get_model(alias)
    if model is None:
        print(f"Foundry Local's catalog has no {alias} (it is fetched from Azure: check the network)", flush=True)
        return NOT_FOUND
    planned = next((v for v in model.variants if v.id == variant), None)
    if planned is None:
        offered = ", ".join(v.id for v in model.variants)
        print(f"Foundry Local offers no {variant} here ({offered}); its own choice stands", flush=True)
    else:
        model.select_variant(planned)
    if not model.is_cached:
        reported = [-1]

        def progress(percent: float) -> None:
            if int(percent) > reported[0]:
                reported[0] = int(percent)
                print(f"downloading {model.id}: {int(percent)}%", flush=True)

        model.download(progress_callback=progress, cancel_event=stop)
    if stop.is_set():
        return 0
    model.load()
    try:
        manager.start_web_service()
        print(f"{LOADED}{model.id} at {', '.join(manager.urls)}", flush=True)
        stop.wait()
    finally:
        manager.stop_web_service()
        model.unload()
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    stop = threading.Event()
    on_stop_signals(lambda *_: stop.set())
    host = f"[{args.host}]" if ":" in args.host else args.host
    try:
        return serve(args.alias, args.variant, f"http://{host}:{args.port}", stop)
    except Exception as err:     # the runtime's own exception types: one line, for the launcher's log tail
        print(f"Foundry Local failed: {type(err).__name__}: {err}", flush=True)
        return NOT_FOUND


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How to call a local server, in lines a person copies: the base URL, the key, a curl line, the log, how to stop."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:     # the record is the runtime's document: adapters read it, never build it
    from gptoss_deploy.runtime.records import Deployment


WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}   # a wildcard bind, and how this machine reaches it


KEYLESS_API_KEY_LINE = "OPENAI_API_KEY=unused   # the server checks no key; the openai SDK needs one set"


@dataclass(frozen=True)
class EndpointDescription:
    """How `up` tells a person about a deployment: a status after its name, then lines to copy."""

    status: str
    lines: list[str]


def server_usage(record: Deployment, reused: bool) -> EndpointDescription:
    endpoint = record.endpoint
    verb = "already running" if reused else "running"
    pid = f" (pid {record.pid})" if record.pid else ""
    status = f"{verb}: {record.model} on {record.backend}{pid}"
    lines = [f"  OpenAI base URL {endpoint.base_url}, model {endpoint.model}",
             f"  export OPENAI_BASE_URL={endpoint.base_url}"]
    if record.host in WILDCARD_HOSTS:
        lines.append(f"  listening on all interfaces: other machines use this machine's address, port "
                     f"{record.port}, with the API key")
    auth = []
    if endpoint.api_key_file:
        lines.append(f"  export {endpoint.api_key_env}=$(cat {shlex.quote(endpoint.api_key_file)})")
        auth = ["-H", f"Authorization: Bearer ${endpoint.api_key_env}"]
    else:     # the official openai SDK will not start without a key, even for a server that checks none
        lines.append(f"  export {KEYLESS_API_KEY_LINE}")
    body = json.dumps({"model": endpoint.model, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = ["curl", f"{endpoint.base_url}/chat/completions", "-H", "Content-Type: application/json", *auth,
            "-d", body]
    lines.append("  " + " ".join(_shell_word(w) for w in curl))
    lines.append(f"  log: {record.log}   stop: gptoss down {record.name}")
    return EndpointDescription(status, lines)


def _shell_word(word: str) -> str:
    # Keep $OPENAI_API_KEY expandable: double quotes for the header, single quotes elsewhere.
    return f'"{word}"' if "$" in word else shlex.quote(word)

"""Human output for deployments: how to call the endpoint, the benchmark against the prediction, the list."""
from __future__ import annotations

import json
import shlex

from rich.console import Console
from rich.table import Table

from gptoss_deploy.backends.base import WILDCARD_HOSTS, masked_env
from gptoss_deploy.cli.render import _tps, launch_command

VERDICT_STYLE = {"pass": "green", "fail": "red", "invalid": "yellow"}


def render_dry_run(console: Console, doc: dict, launch) -> None:
    console.print(f"[bold]Dry run[/]: {doc['model']} on {doc['backend']} (nothing was started)")
    for download in launch.downloads:
        what = f"{download['repo']} {', '.join(download['files'])}"
        size = f"{download['bytes'] / 1024**3:.1f} GiB to download" if download["missing"] else "already downloaded"
        console.print(f"  download: {what} ({size})", markup=False, soft_wrap=True)
    for warning in launch.warnings + ([launch.unavailable] if launch.unavailable else []):
        console.print(f"  [yellow]warning[/]: {warning}")
    if launch.argv:
        console.print(f"  {launch_command({'argv': launch.argv, 'env': masked_env(launch.env)})}",
                      markup=False, highlight=False, soft_wrap=True)
    console.print(f"  endpoint: {launch.base_url} (model {launch.served_model})", markup=False, soft_wrap=True)


def render_dry_run_api(console: Console, doc: dict) -> None:
    console.print(f"[bold]Dry run[/]: {doc['model']} on {doc['backend']} (nothing was called)")
    console.print(f"  {launch_command(doc['launch'])}", markup=False, highlight=False, soft_wrap=True)


def dry_run_json(doc: dict, launch) -> dict:
    return {"dry_run": True, "argv": launch.argv, "env": masked_env(launch.env), "downloads": launch.downloads,
            "warnings": launch.warnings, "unavailable": launch.unavailable, "endpoint": {"base_url": launch.base_url, "model": launch.served_model},
            "plan": doc}


BOTO3_SNIPPET = """\
import boto3
client = boto3.client("bedrock-runtime", region_name="{region}")
response = client.converse(
    modelId="{model_id}",
    messages=[{{"role": "user", "content": [{{"text": "Hello!"}}]}}],
    additionalModelRequestFields={{"reasoning_effort": "{effort}"}},
)
print(response["output"]["message"]["content"][-1]["text"])"""


def render_deployment(console: Console, record: dict, reused: bool) -> None:
    if record["protocol"] == "bedrock":
        _render_bedrock(console, record, reused)
    elif record["protocol"] == "azure":
        _render_azure(console, record, reused)
    else:
        _render_server(console, record, reused)
    if record.get("benchmark"):
        render_benchmark(console, record["benchmark"])


def _render_bedrock(console: Console, record: dict, reused: bool) -> None:
    endpoint = record["endpoint"]
    state = "recorded before" if reused else "ready"
    console.print(f"[bold green]{record['name']}[/] {state}: {endpoint['model_id']} on AWS Bedrock in "
                  f"{endpoint['region']} (account {record['account']})")
    effort = record["plan"].get("reasoning_effort", "medium")
    snippet = BOTO3_SNIPPET.format(region=endpoint["region"], model_id=endpoint["model_id"], effort=effort)
    console.print("  Call it with boto3:", markup=False)
    console.print("\n".join("    " + line for line in snippet.splitlines()), markup=False, highlight=False)
    if endpoint.get("base_url"):
        console.print(f"  OpenAI-compatible: export OPENAI_BASE_URL={endpoint['base_url']} (with a Bedrock API key "
                      "as OPENAI_API_KEY)", markup=False, highlight=False, soft_wrap=True)
    price = record["plan"].get("price") or {}
    if price.get("usd_per_1m_input_tokens") is not None:
        console.print(f"  list price: ${price['usd_per_1m_input_tokens']:g} in / ${price['usd_per_1m_output_tokens']:g} "
                      f"out per 1M tokens ({price['note']})", markup=False, soft_wrap=True)


def _render_azure(console: Console, record: dict, reused: bool) -> None:
    endpoint = record["endpoint"]
    state = "recorded before" if reused else "ready"
    kind = endpoint["kind"].replace("_", " ")
    console.print(f"[bold green]{record['name']}[/] {state}: {kind} {endpoint['name']} "
                  f"({endpoint['model_id']}) in {record['region']}, workspace {record['workspace']}")
    console.print(f"  export OPENAI_BASE_URL={endpoint['base_url']}", markup=False, highlight=False, soft_wrap=True)
    fetch_key = ["az", "ml", endpoint["kind"].replace("_", "-"), "get-credentials", "--name", endpoint["name"],
                 "--resource-group", record["resource_group"], "--workspace-name", record["workspace"],
                 "--query", "primaryKey", "-o", "tsv"]
    console.print(f"  export OPENAI_API_KEY=$({shlex.join(fetch_key)})", markup=False, highlight=False,
                  soft_wrap=True)
    console.print(f"  the key stays in Azure; delete the endpoint with: gptoss down {record['name']}",
                  markup=False, highlight=False, soft_wrap=True)
    if endpoint["kind"] == "online_endpoint":
        console.print(f"  {record['plan']['launch']['api']['instance_type']} is billed per hour until then",
                      markup=False, highlight=False, soft_wrap=True)


def _render_server(console: Console, record: dict, reused: bool) -> None:
    endpoint = record["endpoint"]
    verb = "already running" if reused else "running"
    console.print(f"[bold green]{record['name']}[/] {verb}: {record['model']} on {record['backend']}"
                  + (f" (pid {record['pid']})" if record.get("pid") else ""))
    for warning in record.get("warnings") or []:
        console.print(f"[yellow]warning[/]: {warning}")
    console.print(f"  OpenAI base URL {endpoint['base_url']}, model {endpoint['model']}", markup=False, soft_wrap=True)
    console.print(f"  export OPENAI_BASE_URL={endpoint['base_url']}", markup=False, highlight=False, soft_wrap=True)
    if record["host"] in WILDCARD_HOSTS:
        console.print(f"  listening on all interfaces: other machines use this machine's address, port "
                      f"{record['port']}, with the API key", markup=False, soft_wrap=True)
    auth = []
    if endpoint.get("api_key_file"):
        console.print(f"  export {endpoint['api_key_env']}=$(cat {shlex.quote(endpoint['api_key_file'])})",
                      markup=False, highlight=False, soft_wrap=True)
        auth = ["-H", f"Authorization: Bearer ${endpoint['api_key_env']}"]
    body = json.dumps({"model": endpoint["model"], "messages": [{"role": "user", "content": "Hello!"}]})
    curl = ["curl", f"{endpoint['base_url']}/chat/completions", "-H", "Content-Type: application/json", *auth,
            "-d", body]
    console.print("  " + " ".join(_shell_word(w) for w in curl), markup=False, highlight=False, soft_wrap=True)
    console.print(f"  log: {record['log']}   stop: gptoss down {record['name']}", markup=False, highlight=False, soft_wrap=True)


def _shell_word(word: str) -> str:
    # Keep $OPENAI_API_KEY expandable: double quotes for the header, single quotes elsewhere.
    return f'"{word}"' if "$" in word else shlex.quote(word)


def render_benchmark(console: Console, bench: dict) -> None:
    table = Table(title="Benchmark", show_header=True, header_style="bold")
    for column in ("", "measured", "predicted"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("decode (single stream)", _tps(bench["decode_tokens_per_s"]),
                  _tps(bench["predicted_decode_tokens_per_s"]))
    if bench.get("server_decode_tokens_per_s") is not None:
        table.add_row("decode (server's own timing)", _tps(bench["server_decode_tokens_per_s"]), "")
    table.add_row("time to first token", f"{bench['ttft_ms']:,.0f} ms" if bench["ttft_ms"] is not None else "-", "")
    table.add_row(f"aggregate ({bench['concurrency']} streams)", _tps(bench["aggregate_tokens_per_s"]), "")
    if bench.get("roofline_efficiency") is not None:
        table.add_row("share of the bandwidth roofline", f"{bench['roofline_efficiency']:.0%}", "")
    spent = bench.get("spent") or {}
    if spent.get("cost_usd") is not None:
        table.add_row("cost of this benchmark", f"${spent['cost_usd']:.4f}", "")
    console.print(table)
    style = VERDICT_STYLE[bench["verdict"]]
    console.print(f"verdict: [{style}]{bench['verdict']}[/]" +
                  "".join(f"\n  - {reason}" for reason in bench.get("reasons") or []))


def render_status(console: Console, records: list[dict]) -> None:
    if not records:
        console.print("No deployments are running. Start one with `gptoss-up`.")
        return
    table = Table(show_header=True, header_style="bold")
    for column in ("name", "state", "pid", "endpoint", "decode"):
        table.add_column(column, overflow="fold")
    for r in records:
        bench = r.get("benchmark") or {}
        where = r["endpoint"].get("base_url") or f"{r['backend']} {r['endpoint'].get('region', '')}"
        table.add_row(r["name"], r["state"], str(r.get("pid") or "-"), where, _tps(bench.get("decode_tokens_per_s")))
    console.print(table)

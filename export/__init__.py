"""A plan as files for the orchestrators people already run: what every target shares (common: the container,
resources, start-up allowance) and one module per target, each named once in TARGETS and each with
`write(ExportRequest) -> str`. A new target (Helm, KServe) is its module and its line here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    module: str              # under gptoss_deploy.export, imported when used (PyYAML is needed only then)
    file_name: str           # what --output DIR writes
    one_node: bool = False   # it runs one node: no replicas, no autoscaling


TARGETS = {
    "kubernetes": Target("kubernetes", "kubernetes.yaml"),
    "skypilot": Target("skypilot", "gpt-oss.sky.yaml"),
    "compose": Target("compose", "compose.yaml", one_node=True),
}

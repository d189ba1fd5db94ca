"""The interactive wizard: a few questions, defaults taken from this machine's own best plan."""
from __future__ import annotations

from collections.abc import Callable, Mapping

from gptoss_deploy.planner.constraints import Constraints
from gptoss_deploy.planner.plan import Backends, Plan

USE_CASES = {
    "Chat and everyday questions": (32768, "medium"),
    "Coding agent or long documents": (65536, "high"),
    "Quick answers, smallest footprint": (8192, "low"),
    "Serving many users (API)": (131072, "medium"),
}
CONTEXTS = (8192, 16384, 32768, 65536, 131072)

# select(question, choices, default) -> chosen; the CLI passes questionary, tests may pass anything alike.
Select = Callable[[str, list[str], str], str]


def questionary_select(question: str, choices: list[str], default: str) -> str:
    import questionary

    # unsafe_ask: Ctrl-C raises KeyboardInterrupt (exit 130) instead of returning None
    return questionary.select(question, choices=choices, default=default, use_shortcuts=True).unsafe_ask()


def ask(constraints: Constraints, suggestion: Plan | None, backends: Backends,
        select: Select = questionary_select) -> Mapping[str, object]:
    """Ask what flags did not already fix; return the answers as planning choices."""
    answers: dict[str, object] = {}
    fixed = {name for name, source in constraints.sources.items() if source.startswith("flag")}
    use_case = select("What will you use gpt-oss for?", list(USE_CASES), _default_use_case(constraints))
    context, effort = USE_CASES[use_case]
    if "reasoning_effort" not in fixed:
        answers["reasoning_effort"] = effort
    if "model" not in fixed:
        recommended = f"auto (recommended here: {_describe(suggestion)})"
        choice = select("Which model?", [recommended, "gpt-oss-20b", "gpt-oss-120b"], recommended)
        answers["model"] = "auto" if choice == recommended else choice
    if "context" not in fixed:
        labels = [f"{n:,} tokens" for n in CONTEXTS]
        choice = select("How much context do you need?", labels, f"{context:,} tokens")
        answers["context"] = CONTEXTS[labels.index(choice)]
    if "local_only" not in fixed:
        local_label, cloud_label = "Only on this machine", "Cloud is fine if this machine cannot run it well"
        default = local_label if suggestion is None or suggestion.chosen.status != "cloud" else cloud_label
        answers["local_only"] = select("Where may it run?", [local_label, cloud_label], default) == local_label
    if "backend" not in fixed:
        local_only = answers.get("local_only", constraints.local_only)
        allowed = [name for name, b in backends.items() if not b.cloud] + \
                  ([] if local_only else [name for name, b in backends.items() if b.cloud])
        choice = select("Which backend?", ["auto (recommended)", *allowed], "auto (recommended)")
        answers["backend"] = "auto" if choice.startswith("auto") else choice
    return answers


def _default_use_case(constraints: Constraints) -> str:
    for label, (context, _) in USE_CASES.items():
        if context == constraints.context:
            return label
    return next(iter(USE_CASES))


def _describe(plan: Plan | None) -> str:
    if plan is None:
        return "nothing fits locally"
    chosen = plan.chosen
    speed = f", ~{chosen.prediction.decode_tokens_per_s:.0f} tok/s" if chosen.prediction else ""
    return f"{chosen.model.name} on {chosen.backend}{speed}"

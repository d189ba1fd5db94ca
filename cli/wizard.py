"""The interactive wizard: a few questions, defaults taken from this machine's own best plan."""
from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import NamedTuple

from gptoss_deploy.planner.catalog import MAX_CONTEXT, REASONING_EFFORTS, model_for
from gptoss_deploy.planner.constraints import MAX_FULL_PROMPT_S, MIN_USER_CONTEXT, MODEL_ALIASES, Constraints
from gptoss_deploy.planner.errors import NoFitError
from gptoss_deploy.planner.plan import Backends, Plan, plan, readable_context
from gptoss_deploy.planner.units import tokens_per_s

class UseCase(NamedTuple):
    context: int
    effort: str
    size: str | None = None        # the model's, where the use case decides it
    variant: str = "gpt-oss"       # whose weights (catalog.VARIANTS)


USE_CASES = {
    "Chat and everyday questions": UseCase(32768, "medium"),
    "Coding agent or long documents": UseCase(65536, "high"),
    "Quick answers, smallest footprint": UseCase(8192, "low", "20b"),
    "Serving many users (API)": UseCase(131072, "medium"),
    # gpt-oss-safeguard reads a policy and the content: its guide (SGG) finds 400-600-token policies best, and
    # reasonable output up to ~10,000 tokens of policy
    "Content moderation under your own policy (gpt-oss-safeguard)": UseCase(16384, "medium", variant="safeguard"),
}
CONTEXTS = (MIN_USER_CONTEXT, 8192, 16384, 32768, 65536, MAX_CONTEXT)
EFFORT_CHOICES = {f"{effort}: {words}": effort for effort, words in zip(REASONING_EFFORTS, (   # in the words a
    "quick answers, fewest tokens", "the model's default balance",                         # person decides by
    "best on hard problems; several times the tokens, so the wait"), strict=True)}
SHOW_ALL = "show the backends that cannot run here"

# select(question, choices, default) -> chosen; the CLI passes questionary, tests may pass anything alike.
Select = Callable[[str, list[str], str], str]
Tell = Callable[[str], None]     # a line for the person answering, beside the questions (stderr)


def questionary_select(question: str, choices: list[str], default: str) -> str:
    import questionary

    # unsafe_ask: Ctrl-C raises KeyboardInterrupt (exit 130) instead of returning None
    return questionary.select(question, choices=choices, default=default, use_shortcuts=True).unsafe_ask()


def tell_on_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


def ask(constraints: Constraints, suggestion: Plan | None, backends: Backends,
        select: Select = questionary_select, tell: Tell = tell_on_stderr) -> Mapping[str, object]:
    """Ask what flags did not already fix; return the answers as planning choices."""
    answers: dict[str, object] = {}
    fixed = {name for name, source in constraints.sources.items() if source.startswith("flag")}
    use_case = select("What will you use gpt-oss for?", list(USE_CASES), _default_use_case(constraints))
    context, effort, size, variant = USE_CASES[use_case]
    if "variant" not in fixed and variant != constraints.variant:
        answers["variant"] = variant
        suggestion = _suggest_again(suggestion, variant, backends)
    if "reasoning_effort" not in fixed:
        default = next(label for label, value in EFFORT_CHOICES.items() if value == effort)
        answers["reasoning_effort"] = EFFORT_CHOICES[select("How hard should it think?", list(EFFORT_CHOICES),
                                                            default)]
    if "model" not in fixed:
        recommended = f"auto (recommended here: {_describe(suggestion)})"
        sizes = {model_for(s, answers.get("variant", constraints.variant)).name: s for s in ("20b", "120b")}
        default = next((name for name, s in sizes.items() if s == size), recommended)
        choice = select("Which model?", [recommended, *sizes], default)
        answers["model"] = "auto" if choice == recommended else sizes[choice]
    if "context" not in fixed:
        answers["context"] = _ask_context(select, suggestion, answers.get("model", constraints.model), context,
                                          backends)
    if not fixed & {"local_only", "cloud"}:
        local_label, cloud_label = "Only on this machine", "Cloud is fine if this machine cannot run it well"
        default = local_label if suggestion is None or suggestion.chosen.status != "cloud" else cloud_label
        if select("Where may it run?", [local_label, cloud_label], default) == local_label:
            answers["local_only"] = True
        else:
            answers["cloud"] = True
    if "backend" not in fixed:
        local_only = answers.get("local_only", constraints.local_only)
        allowed = [name for name, b in backends.items() if not (local_only and b.cloud)]
        answers["backend"] = _ask_backend(select, tell, allowed, _not_usable_here(suggestion, backends))
    return answers


def _ask_backend(select: Select, tell: Tell, allowed: list[str], not_usable: Mapping[str, str]) -> str:
    """The backends that can run here; those that cannot only on request, each with why. The reasons are told
    before the question, where the terminal wraps them whole: a prompt cuts its lines at the terminal's width."""
    auto = "auto (recommended)"
    usable = [name for name in allowed if name not in not_usable]
    hidden = [name for name in allowed if name in not_usable]
    choice = select("Which backend?", [auto, *usable, *([SHOW_ALL] if hidden else [])], auto)
    if choice == SHOW_ALL:
        tell("These backends cannot run here as things are:")
        for name in hidden:
            tell(f"  {name}: {not_usable[name]}")
        choice = select("Which backend? (those above cannot run here)",
                        [auto, *usable, *(f"{name} (not usable here: see above)" for name in hidden)], auto)
    return "auto" if choice == auto else choice.split(" ")[0]


def _not_usable_here(suggestion: Plan | None, backends: Backends) -> dict[str, str]:
    """Backends that cannot serve here, with why: not installed (or no SDK), or no model fits them on this machine
    (vLLM on a machine without a supported GPU)."""
    found = {name: why for name, backend in backends.items() if (why := backend.unavailable())}
    if suggestion is None:
        return found
    for name in backends.keys() - found.keys():
        try:
            plan(suggestion.hardware, suggestion.constraints.relaxed(backend=name, model="auto", local_only=False),
                 backends)
        except NoFitError as err:
            found[name] = err.message.split(". Instead")[0]
    return found


def _ask_context(select: Select, suggestion: Plan | None, model: str, wanted: int, backends: Backends) -> int:
    """Contexts from the shortest the planner takes up, and the one it would cap to here (its longest read within
    MAX_FULL_PROMPT_S) among them; the default is the use case's WANTED context, or that cap where it is shorter."""
    readable = None
    if suggestion is not None:
        readable = readable_context(suggestion.hardware, suggestion.constraints.relaxed(model=MODEL_ALIASES[model]),
                                    backends)
    contexts = sorted({*CONTEXTS, *([readable[0]] if readable else [])})
    question = "How much context do you need?"
    if readable and readable[1] > MAX_FULL_PROMPT_S:
        question += (f" (here even {readable[0]:,} tokens take ~{readable[1]:,.0f} s to read: nothing is read within "
                     f"{MAX_FULL_PROMPT_S:.0f} s)")
    elif readable and readable[0] < wanted:
        question += f" (here a prompt over {readable[0]:,} tokens takes more than {MAX_FULL_PROMPT_S:.0f} s to read)"
    labels = [f"{n:,} tokens" + (f" (the longest read within {MAX_FULL_PROMPT_S:.0f} s here)"
                                  if readable and n == readable[0] and n not in CONTEXTS else "") for n in contexts]
    default = min(wanted, readable[0]) if readable else wanted
    return contexts[labels.index(select(question, labels, labels[contexts.index(default)]))]


def _default_use_case(constraints: Constraints) -> str:
    for label, use in USE_CASES.items():
        if use.context == constraints.context and use.variant == constraints.variant:
            return label
    return next(iter(USE_CASES))


def _suggest_again(suggestion: Plan | None, variant: str, backends: Backends) -> Plan | None:
    """This machine's best plan of VARIANT's weights (another variant's may run on another backend, or not here)."""
    if suggestion is None:
        return None
    try:
        return plan(suggestion.hardware, suggestion.constraints.relaxed(variant=variant), backends)
    except NoFitError:
        return None


def _describe(plan: Plan | None) -> str:
    if plan is None:
        return "nothing fits locally"
    chosen = plan.chosen
    speed = f", ~{tokens_per_s(chosen.prediction.decode_tokens_per_s)}" if chosen.prediction else ""
    return f"{chosen.model.name} on {chosen.backend}{speed}"

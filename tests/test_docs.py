"""The README a newcomer follows: what it points to is in the repository, and every source the code cites is
listed in docs/sources.md."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
SOURCES = (ROOT / "docs" / "sources.md").read_text()


def test_every_file_the_readme_links_to_is_in_the_repository():
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert links and all((ROOT / link).exists() for link in links), links
    assert "../shared" not in README


def test_every_source_key_cited_in_the_code_is_listed_in_docs_sources():
    keys = set(re.findall(r"^\| ([A-Z][A-Z0-9]+) \|", SOURCES, re.MULTILINE))
    code = "\n".join(p.read_text() for folder in ("planner", "backends") for p in (ROOT / folder).glob("*.py"))
    cited = set(re.findall(r"\b(G15396|SPARK|IK1075|LCS|OAI|HFCFG|VR|CBO|OLL|AWS|AZ|STX33|V22331|IX828|SMC3090)\b",
                           "\n".join(line.split("#", 1)[1] for line in code.splitlines() if "#" in line)))
    assert cited and cited <= keys, cited - keys


def test_ci_runs_exactly_the_readmes_test_command():
    """A newcomer's second command is what CI runs: a change to one that forgets the other is caught here."""
    [test_command] = [block for block in re.findall(r"```bash\n(.*?)\n```", README, re.DOTALL) if "pytest" in block]
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == test_command

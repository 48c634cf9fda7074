"""The Markdown files' relative links point at files and headings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The project's own folders: hidden ones (.venv, .pytest_cache) hold other projects' READMEs.
DOCUMENTS = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"),
                    *(path for path in ROOT.glob("*/README.md") if not path.parent.name.startswith("."))])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.DOTALL)


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """The anchors of a Markdown file's headings (not of `#` lines in code); a repeated one gets -1, -2, ..."""
    found, counts = set(), {}
    for line in FENCE.sub("", document.read_text()).splitlines():
        if line.startswith("#"):
            name = anchor(line.lstrip("#"))
            found.add(f"{name}-{counts[name]}" if name in counts else name)
            counts[name] = counts.get(name, 0) + 1
    return found


def test_anchor_is_githubs(tmp_path):
    assert anchor("Which embedder `auto` picks (2026-11-29)") == "which-embedder-auto-picks-2026-11-29"
    assert anchor("Outputs (`--out`)") == "outputs---out"
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n```bash\n# a comment\n```\n\n## Notes\n\n## Notes\n")
    assert anchors(page) == {"title", "notes", "notes-1"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document: Path):
    text = FENCE.sub("", document.read_text())  # code may hold bracketed text that is not a link
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, broken

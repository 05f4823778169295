"""Markdown for the ``## Resilience`` section of docs/benchmarks.md (other sections are kept as they are)."""

from __future__ import annotations

import re
from pathlib import Path

SECTION = "## Resilience"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def replace_section(path: Path, body: str) -> None:
    """Write ``body`` (starting with ``## Resilience``) in place of that section, or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = body.rstrip() + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n")

"""Markdown for the sections of docs/benchmarks.md: tables, and writing one ``## `` section in place
(other sections are kept as they are)."""

from __future__ import annotations

import re
from pathlib import Path

SECTION = "## Resilience"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def replace_section(path: Path, body: str) -> None:
    """Write ``body`` in place of the section its first line heads (``## Resilience``, ``## Monitor``,
    ...), or append it; the file is made if missing."""
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nMeasured numbers, with the command that produced them.\n"
    )
    heading = body.split("\n", 1)[0]
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    block = body.rstrip() + "\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text.rstrip() + "\n")

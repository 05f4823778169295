"""The examples in docs/ run and say what the docs say they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


def test_quickstart_falls_back_to_the_cache_then_opens_the_circuit() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "API up:   {'id': 42, 'name': 'Ada'}"
    assert lines[1].startswith("API hung: {'id': 42, 'name': 'Ada (cached)'} in 0.2")
    assert lines[2].startswith("circuit:  open")
    assert lines[3].startswith("open:     {'id': 42, 'name': 'Ada (cached)'}")

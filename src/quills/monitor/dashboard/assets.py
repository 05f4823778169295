"""The dashboard's static files: where they are and how one request path maps to one of them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ("DASHBOARD_PATH", "Asset", "find_asset", "static_dir")

#: where the page is served (the page itself is ``/dashboard/``)
DASHBOARD_PATH = "/dashboard"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, read once: its bytes and its ``Content-Type``."""

    body: bytes
    content_type: str


def static_dir() -> Path:
    """The folder of the shipped assets (``index.html``, ``dashboard.css``, ``js/*.js``)."""
    return Path(__file__).with_name("static")


@cache
def _load(relative: str) -> Asset | None:
    root = static_dir().resolve()
    path = (root / relative).resolve()
    # only files inside the folder, with a type we serve: no "..", no dotfiles, no directory listings
    if root not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        return None
    return Asset(path.read_bytes(), _TYPES[path.suffix])


def find_asset(sub_path: str) -> Asset | None:
    """The asset for the part of a URL path after ``/dashboard/`` (``""`` is the page), or None.

    Names with ``..``, a leading dot or a backslash are never served.
    """
    relative = sub_path.lstrip("/") or "index.html"
    parts = relative.split("/")
    if any(not part or part.startswith(".") or "\\" in part for part in parts):
        return None
    return _load(relative)

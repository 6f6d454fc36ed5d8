"""Provenance recorded in every output: the code version and content hashes of input files."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from pipeline import __version__


def code_version() -> str:
    """Package version plus the git commit of the checkout (``+dirty`` if modified), if any."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return __version__
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{out}" if out else __version__


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's content, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()

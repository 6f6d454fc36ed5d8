"""Atomic outputs: build under a hidden temporary sibling, rename into place when complete.

Every writer in the project goes through here. A killed process leaves only a hidden
``.<name>.partial-<pid>-<random>`` sibling, never something a rerun could take as finished;
the next writer of the same path removes such leftovers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


def partial_path(path: str | Path) -> Path:
    """A fresh hidden temporary sibling of ``path`` (not created)."""
    path = Path(path)
    return path.parent / f"{_partial_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Delete temporaries left by killed writers of ``path``; returns what was removed."""
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for child in sorted(path.parent.iterdir()):
            if child.name.startswith(_partial_prefix(path)):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
                removed.append(child)
    return removed


def replace(tmp: Path, path: Path) -> None:
    """Move finished ``tmp`` to ``path``, replacing an older file or directory there."""
    old = None
    if path.is_dir() and not path.is_symlink():
        old = path.parent / f"{_partial_prefix(path)}old-{secrets.token_hex(4)}"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it becomes ``path``, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = partial_path(path)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it becomes ``path``, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    tmp = partial_path(path)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

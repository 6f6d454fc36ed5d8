"""Atomic outputs: build under a hidden temporary sibling, rename into place when complete.

Every writer in the project goes through here. A killed process leaves only a hidden
``.<name>.partial-<pid>-<random>`` sibling, never something a rerun could take as finished;
the next writer of the same path removes such leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from pipeline.errors import OutputFileError

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
"""Errors that can only come from writing (disk full, quota, file size limit, read-only file
system): raised while an output is built, they become an :class:`OutputFileError` naming it."""


def output_error(path: str | Path, err: OSError) -> OutputFileError:
    """The one-line error for ``err`` raised while writing ``path`` (libraries such as zarr raise
    ``OSError(28, 'No space left on device')`` without any file name)."""
    detail = err.strerror or str(err) or type(err).__name__
    where = f" at {err.filename}" if getattr(err, "filename", None) and str(err.filename) != str(path) else ""
    return OutputFileError(path, f"cannot write output ({detail}{where}); free space or fix the folder's permissions, then rerun")


@contextlib.contextmanager
def naming_output(path: str | Path, any_oserror: bool = False) -> Iterator[None]:
    """Turn an ``OSError`` of writing (:data:`WRITE_ERRNOS`; any ``OSError`` if ``any_oserror``)
    raised inside the block into :func:`output_error` naming ``path``."""
    try:
        yield
    except OSError as err:
        if not (any_oserror or err.errno in WRITE_ERRNOS):
            raise
        raise output_error(path, err) from err


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


def prepare_parent(path: Path) -> Path:
    """Create ``path``'s folder and remove stale temporaries; returns a fresh temporary sibling.
    Any ``OSError`` (a forbidden or read-only folder) is an :class:`OutputFileError` naming ``path``."""
    with naming_output(path, any_oserror=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
    return partial_path(path)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it becomes ``path``, on an exception it is removed.
    A disk-full (or other write) error raises :class:`OutputFileError` naming ``path``."""
    path = Path(path)
    tmp = prepare_parent(path)
    try:
        with naming_output(path, any_oserror=True):
            tmp.mkdir()
        with naming_output(path):
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with naming_output(path, any_oserror=True):
        replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it becomes ``path``, on an exception it is removed.
    A disk-full (or other write) error raises :class:`OutputFileError` naming ``path``."""
    path = Path(path)
    tmp = prepare_parent(path)
    try:
        with naming_output(path):
            yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with naming_output(path, any_oserror=True):
        replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")

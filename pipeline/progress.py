"""Progress of long loops: a tqdm bar on a terminal; in a log file (every Snakemake job's stderr)
one plain line at most every 30 s instead of carriage-return frames."""

from __future__ import annotations

import io
import sys
from typing import Any, Iterable


class _Lines(io.TextIOBase):
    """A stream for tqdm that turns its carriage-return redraws into whole, deduplicated lines."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> int:
        for part in text.replace("\r", "\n").split("\n"):
            part = part.strip()
            if part and part != self._last:
                self.stream.write(part + "\n")
                self._last = part
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """``tqdm(iterable, **kwargs)`` on a terminal; elsewhere the same object writing a plain line
    at most every 30 s (and the final state) to stderr."""
    from tqdm import tqdm

    if sys.stderr.isatty():
        return tqdm(iterable, dynamic_ncols=True, **kwargs)
    return tqdm(iterable, file=_Lines(sys.stderr), mininterval=30.0, maxinterval=120.0, ncols=110, ascii=True, **kwargs)

"""Shared by the devkit scripts (run by ``.venv-devkit/bin/python``, numpy<2, never by pytest):
JSON in, JSON out, through files named on the command line."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any


def finite_or_none(value: float) -> float | None:
    """A float for JSON: NaN becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


def main(run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """``python <script> IN.json OUT.json``: ``run(json of IN)`` written to OUT."""
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} IN.json OUT.json")
    with open(sys.argv[1], encoding="utf-8") as handle:
        request = json.load(handle)
    result = run(request)
    with open(sys.argv[2], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)

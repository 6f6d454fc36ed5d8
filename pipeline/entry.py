"""The one way our command-line entry points run a parsed command: logging set up, a
:class:`~pipeline.errors.UserError` printed as one line (exit status 2), no traceback."""

from __future__ import annotations

import argparse
import logging
import sys


def program_name(package: str, script: str) -> str:
    """The name ``--help`` shows: ``script`` (e.g. ``cns-train``) when the process runs as that
    console script, else ``python -m <package>``."""
    from pathlib import Path

    return script if Path(sys.argv[0]).stem == script else f"python -m {package}"


def one_line(err: BaseException) -> str:
    """The message of a :class:`~pipeline.errors.UserError` for the user. Raised in a worker process
    (torch's DataLoader), it comes back wrapped in the worker's traceback: then only its last line,
    the original message, without the exception's qualified name."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else last


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` (which has a ``-v/--verbose`` flag and sub-commands that set
    ``func``), configure logging and run the command; returns the process exit status."""
    from pipeline.errors import UserError

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        result = args.func(args)
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)

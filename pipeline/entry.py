"""The one way our command-line entry points run a parsed command: logging set up, a
:class:`~pipeline.errors.UserError` printed as one line (exit status 2), no traceback."""

from __future__ import annotations

import argparse
import logging
import sys


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
        print(f"error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)

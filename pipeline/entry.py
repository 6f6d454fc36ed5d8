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

    import time

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    warnings = _WarningCounter()
    logging.getLogger().addHandler(warnings)
    started = time.perf_counter()
    try:
        result = args.func(args)
    except UserError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    finally:
        logging.getLogger().removeHandler(warnings)
    status = int(result or 0)
    if status == 0:
        print(summary_line(parser.prog, args, time.perf_counter() - started, warnings), flush=True)
    return status


class _WarningCounter(logging.Handler):
    """Counts the warnings a command logs and keeps the first few (for its summary line)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 2:
            self.first.append(record.getMessage().splitlines()[0][:160])


def summary_line(prog: str, args: argparse.Namespace, seconds: float, warnings: _WarningCounter) -> str:
    """One line on stdout when a command succeeds (the terminal, under Snakemake, whose rules send
    stderr to the log): the command, what it wrote, the time, and the warnings it logged."""
    words = [prog.split()[-1] if prog.startswith("python -m") else prog, *(str(getattr(args, k)) for k in ("command", "mode")
                                                                              if isinstance(getattr(args, k, None), str))]
    out = next((getattr(args, k) for k in ("out", "json", "markdown", "html") if isinstance(getattr(args, k, None), str)), None)
    text = f"{' '.join(words)}{f' -> {out}' if out else ''}: done in {seconds:.1f} s"
    if warnings.count:
        text += f"; {warnings.count} warning{'s' if warnings.count > 1 else ''} (first: {warnings.first[0]})"
    return text

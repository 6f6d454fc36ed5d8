"""``python -m pipeline <command>``: the CLI every Snakemake rule calls.

Each command lives in its own module, which exposes ``register(subparsers)``; that function
adds one sub-parser and sets ``func`` to a callable taking the parsed namespace. Command
modules import heavy libraries (torch, zarr, models) inside their functions, so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Before torch is imported by any command: spinning OpenMP threads slow torch down badly when
# several jobs share the cores (Snakemake runs jobs side by side).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.demo.cli",
    "pipeline.demo_nuscenes.cli",
    "pipeline.demo_nuimages.cli",
    "pipeline.prepare",
    "pipeline.manifest",
    "pipeline.clip.cli",
    "pipeline.clip.convert_cli",
    "pipeline.clip.text_cache",
    "pipeline.sam.cli",
    "pipeline.refine.cli",
    "pipeline.project.cli",
    "pipeline.report.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.entry import program_name

    parser = argparse.ArgumentParser(
        prog=program_name("pipeline", "cns-pipeline"),
        description=(
            "Offline stages of the CNS label-free segmentation tool. Normally run by Snakemake "
            "(see README.md); every command can also be run by hand."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.entry import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

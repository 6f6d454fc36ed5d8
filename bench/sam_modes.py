"""Benchmark: refinement gain under the simulated SAM's two modes (issue 14).

Runs ``snakemake pseudo_labels`` on the default demo (config.yaml: 4 scenes, 3 train + 1 val)
four times, CLIP noise setting x SAM mode, each in its own folder ``<out>/<setting>`` (its own
generated data, stores and reports; ``--directory``, so no results land in this checkout):

* CLIP ``default``: the simulated CLIP's default noise (confusions, blobs, boundary errors);
  ``systematic``: its systematic errors only (``clip.simulated.systematic_only: true``, as in
  workflow/configs/demo_learning_systematic.yaml);
* SAM ``merge`` (the original model) or ``oversegment`` (``sam.simulated.mode``).

Then reads each split's pseudo-label report (``results/reports/pseudo_labels/<split>.json``) and
prints one Markdown table: pixel mIoU of raw CLIP and of the refined labels in both nesting orders
(the configured ``part`` in ``views/label``, ``object`` in ``views/label_alt``), point mIoU of raw
CLIP and of the refined labels (configured order, ``part``). The reports' own class set: the
classes present in the split's ground truth of that domain. Nothing is selected: a measurement.

    PYTHONPATH=. python bench/sam_modes.py --out <folder> [--cores 1] [--sam-seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline from this checkout

CLIP_SETTINGS: dict[str, dict[str, Any]] = {"default": {}, "systematic": {"systematic_only": True}}
SAM_MODES = ("merge", "oversegment")
SPLITS = ("train", "val")
COLUMNS = {  # table column -> report stage
    "px CLIP": "pixels: CLIP",
    "px refined (part)": "pixels: refined (part)",
    "px refined (object)": "pixels: refined (object)",
    "pt CLIP": "points: CLIP",
    "pt refined (part)": "points: refined",
}


def overlay(clip: str, mode: str, sam_seed: int = 0) -> dict[str, Any]:
    """The --configfile overlay of one setting (paths relative to its folder)."""
    return {
        "results": "results",
        "dataset": {"root": "results/data"},
        "refine": {"nesting_order": "part"},
        "clip": {"simulated": dict(CLIP_SETTINGS[clip])},
        "sam": {"seed": sam_seed, "simulated": {"mode": mode}},
    }


def run_setting(folder: Path, clip: str, mode: str, cores: int, sam_seed: int = 0) -> float:
    """``snakemake pseudo_labels`` for one setting in ``folder``; returns its wall time (s)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "overlay.yaml"
    config.write_text(yaml.safe_dump(overlay(clip, mode, sam_seed), sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder),
           "--configfile", str(config), "--cores", str(cores), "pseudo_labels"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    (folder / "snakemake.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{clip}/{mode}: snakemake failed (exit {proc.returncode}); see {folder / 'snakemake.log'}:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def read_row(folder: Path, split: str) -> dict[str, Any]:
    """The table cells of one setting and split from its pseudo-label report (mIoU in %)."""
    report = json.loads((folder / "results" / "reports" / "pseudo_labels" / f"{split}.json").read_text())
    assert report["nesting_order"] == "part", report["nesting_order"]
    stages = report["stages"]
    row: dict[str, Any] = {name: 100 * stages[stage]["miou"] for name, stage in COLUMNS.items()}
    row["class_sets"] = report["class_sets"]
    row["sam_backend"] = report["backends"].get("sam")
    return row


def sam_mode_recorded(folder: Path) -> str:
    """The mode the SAM stores of a setting record (all shards must agree)."""
    from pipeline.stores import StoreReader

    modes = {StoreReader(p, "sam").attrs["simulated"]["mode"] for p in sorted((folder / "results" / "sam").glob("*.zarr"))}
    if len(modes) != 1:
        raise SystemExit(f"{folder}: SAM stores record modes {sorted(modes)}")
    return modes.pop()


def markdown(rows: dict[tuple[str, str, str], dict[str, Any]]) -> str:
    """The table: one line per split x CLIP setting x SAM mode, with the refinement gains."""
    head = ["split", "CLIP noise", "SAM mode", *COLUMNS, "gain px (part)", "gain px (object)", "gain pt"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (split, clip, mode), row in rows.items():
        cells = [f"{row[c]:.1f}" for c in COLUMNS]
        gains = [row["px refined (part)"] - row["px CLIP"], row["px refined (object)"] - row["px CLIP"], row["pt refined (part)"] - row["pt CLIP"]]
        lines.append("| " + " | ".join([split, clip, mode, *cells, *(f"{g:+.1f}" for g in gains)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="working folder (one subfolder per setting)")
    parser.add_argument("--cores", type=int, default=1, help="snakemake --cores (default 1)")
    parser.add_argument("--sam-seed", type=int, default=0, help="sam.seed of every setting (default 0, config.yaml's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    times = {}
    for clip in CLIP_SETTINGS:
        for mode in SAM_MODES:
            folder = args.out.resolve() / f"{clip}-{mode}"
            times[f"{clip}-{mode}"] = run_setting(folder, clip, mode, args.cores, args.sam_seed)
            recorded = sam_mode_recorded(folder)
            if recorded != mode:
                raise SystemExit(f"{folder}: SAM stores record mode {recorded!r}, expected {mode!r}")
            for split in SPLITS:
                rows[(split, clip, mode)] = read_row(folder, split)
    ordered = {key: rows[key] for key in sorted(rows, key=lambda k: (SPLITS.index(k[0]), list(CLIP_SETTINGS).index(k[1]), SAM_MODES.index(k[2])))}
    print(markdown(ordered))
    print()
    for split in SPLITS:
        sets = ordered[(split, "default", "merge")]["class_sets"]
        print(f"{split} classes scored: " + "; ".join(f"{d}: {', '.join(names)}" for d, names in sets.items()))
    print("wall time per setting (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    if args.json:
        args.json.write_text(json.dumps({"|".join(k): v for k, v in ordered.items()} | {"times_s": times}, indent=1))


if __name__ == "__main__":
    main()

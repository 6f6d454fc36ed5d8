"""The ablation table from evaluated runs: per row, mean ± spread and range over seeds.

The runs themselves are Snakemake jobs (``snakemake ablation``, workflow/rules/ablation.smk):
every row (a config preset) × seed runs stage 1, predict, stage 2 and evaluate through the
training rules, with Snakemake's rerun triggers. This module only reads their ``metrics.json``:
2D and 3D mIoU of each run's final checkpoint as mean ± sample standard deviation and min-max
over seeds, plus the pipeline's pseudo-labels on the same samples as the reference row, and for
each configured comparison (``ablation.comparisons``) the paired per-seed differences with a
verdict per component (:func:`paired`). Every
run is scored on the same split, so every row averages the same classes (those present in the
split's ground truth); a run whose class set differs from the others' is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline.atomic import atomic_write_text
from pipeline.errors import UserError


def _stats(values: list[float]) -> dict:
    arr = np.array(values, dtype=np.float64) * 100
    if arr.size == 0:
        return {"values": [], "mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "values": [round(float(v), 2) for v in arr],
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def _parse_runs(runs: Sequence[str]) -> dict[str, dict[int, Path]]:
    """``ROW:SEED:DIR`` items → {row: {seed: metrics.json}} in the order given."""
    out: dict[str, dict[int, Path]] = {}
    for item in runs:
        parts = item.split(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise UserError(f"--runs {item!r}: expected ROW:SEED:DIR")
        row, seed, folder = parts[0], int(parts[1]), Path(parts[2])
        metrics = folder / "metrics.json"
        if not metrics.is_file():
            raise UserError(f"{metrics}: not found (run `snakemake ablation` to evaluate row {row} seed {seed})")
        out.setdefault(row, {})[seed] = metrics
    return out


def build_table(runs: Sequence[str], presets: Sequence[str] = ()) -> dict:
    """The table as a dict: rows (2D/3D stats, final stage, seeds), reference pseudo-label rows."""
    parsed = _parse_runs(runs)
    preset_files = dict(item.split(":", 1) for item in presets if ":" in item)
    rows, reference, splits = {}, {}, set()
    class_sets: dict[str, set[tuple[str, ...]]] = {"2d": set(), "3d": set()}
    seeds_of_rows = {tuple(sorted(s)) for s in parsed.values()}
    if len(seeds_of_rows) > 1:
        raise UserError(f"rows were run with different seeds {sorted(seeds_of_rows)}; every row needs the same seeds")
    for row, by_seed in parsed.items():
        per_seed = [json.loads(path.read_text()) for _, path in sorted(by_seed.items())]
        results = [m["results"] for m in per_seed]
        splits.update(s for m in per_seed for s in m.get("splits", []))
        for r in results:
            for key, sets in class_sets.items():
                if "class_set" in r.get(key, {}):
                    sets.add(tuple(r[key]["class_set"]))
        rows[row] = {
            "preset": preset_files.get(row),
            "seeds": sorted(by_seed),
            "stage": per_seed[0]["checkpoint"]["stage"],
            "2d": _stats([r["2d"]["miou"] for r in results if "2d" in r]),
            "3d": _stats([r["3d"]["miou"] for r in results if "3d" in r]),
        }
        if not reference:
            reference = {k: 100 * results[0][k]["miou"] for k in ("pseudo2d", "pseudo3d", "pseudo2d_all", "pseudo3d_all") if k in results[0]}
    for key, sets in class_sets.items():
        if len(sets) > 1:
            raise UserError(f"{key} mIoU of the runs averages different class sets {sorted(sets)}: were they evaluated on the same split?")
    return {"rows": rows, "pseudo_labels": reference, "splits": sorted(splits),
            "class_sets": {key: list(next(iter(sets))) for key, sets in class_sets.items() if sets}}


T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
"""Two-sided 95 % quantiles of Student's t by degrees of freedom (1.96 beyond 10)."""


def paired(table: dict, comparisons: Sequence[Mapping[str, str]]) -> list[dict]:
    """Per comparison ``{component, row, baseline}`` and metric (2D, 3D): the per-seed differences
    row − baseline (same seeds: paired), their mean, sample sd, 95 % t interval of the mean and a
    verdict: ``helps`` (interval above 0), ``hurts`` (below 0), ``not resolved`` (it contains 0).
    Comparisons naming a row the table lacks are listed as skipped (an ablation run with fewer presets)."""
    out = []
    for comp in comparisons:
        row, base = table["rows"].get(comp["row"]), table["rows"].get(comp["baseline"])
        entry = {"component": comp["component"], "row": comp["row"], "baseline": comp["baseline"]}
        if row is None or base is None:
            out.append({**entry, "skipped": "row not in this table"})
            continue
        for metric in ("2d", "3d"):
            a, b = row[metric]["values"], base[metric]["values"]
            if not a or len(a) != len(b):
                continue
            d = np.array(a, np.float64) - np.array(b, np.float64)
            n = d.size
            sd = float(d.std(ddof=1)) if n > 1 else float("nan")
            half = T_975.get(n - 1, 1.96) * sd / np.sqrt(n) if n > 1 else float("nan")
            low, high = float(d.mean() - half), float(d.mean() + half)
            verdict = "not resolved" if n < 2 or low <= 0 <= high else "helps" if low > 0 else "hurts"
            entry[metric] = {"differences": [round(float(v), 2) for v in d], "mean": float(d.mean()), "std": sd,
                             "ci95": [low, high], "verdict": verdict}
        out.append(entry)
    return out


def markdown(table: dict) -> str:
    """The table as Markdown: one line per row plus the pseudo-label reference."""
    seeds = next(iter(table["rows"].values()))["seeds"] if table["rows"] else []
    lines = [
        f"Seeds {seeds}; mIoU in percent on {', '.join(table['splits']) or '?'}, final checkpoints; "
        "mean ± sample std (min–max). Every row averages the same classes, those present in the split's ground truth"
        + "".join(f"; {key.upper()}: {len(names)}" for key, names in table.get("class_sets", {}).items()) + ".",
        "",
        "| row | final stage | 2D mIoU | 3D mIoU |",
        "|---|---|---|---|",
    ]
    for name, row in table["rows"].items():
        cells = [f"{row[m]['mean']:.1f} ± {row[m]['std']:.1f} ({row[m]['min']:.1f}–{row[m]['max']:.1f})" for m in ("2d", "3d")]
        lines.append(f"| {name} | {row['stage']} | {cells[0]} | {cells[1]} |")
    ref = table["pseudo_labels"]
    if ref:
        lines.append(
            f"| pseudo-labels (labelled only / all) | – | {ref.get('pseudo2d', float('nan')):.1f} / {ref.get('pseudo2d_all', float('nan')):.1f}"
            f" | {ref.get('pseudo3d', float('nan')):.1f} / {ref.get('pseudo3d_all', float('nan')):.1f} |"
        )
    if table.get("paired"):
        lines += [
            "",
            "Paired differences (row − baseline, seed by seed; mIoU points): mean ± sample sd [95 % t interval "
            "of the mean] (per-seed values); verdict: helps / hurts when the interval excludes 0, else not resolved.",
            "",
            "| component | row − baseline | 2D | 2D verdict | 3D | 3D verdict |",
            "|---|---|---|---|---|---|",
        ]
        for comp in table["paired"]:
            if comp.get("skipped"):
                lines.append(f"| {comp['component']} | {comp['row']} − {comp['baseline']} | skipped: {comp['skipped']} | | | |")
                continue
            cells = []
            for metric in ("2d", "3d"):
                d = comp.get(metric)
                if d is None:
                    cells += ["–", "–"]
                    continue
                values = ", ".join(f"{v:+.1f}" for v in d["differences"])
                cells += [f"{d['mean']:+.1f} ± {d['std']:.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}] ({values})", d["verdict"]]
            lines.append(f"| {comp['component']} | {comp['row']} − {comp['baseline']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(runs: Sequence[str], presets: Sequence[str], markdown_path: str | Path, json_path: str | Path,
                comparisons: Sequence[Mapping[str, str]] = ()) -> dict:
    """Build the table from ``runs`` (with the ``comparisons``' paired differences, :func:`paired`)
    and write ``markdown_path`` and ``json_path`` atomically."""
    table = build_table(runs, presets)
    table["paired"] = paired(table, comparisons)
    atomic_write_text(json_path, json.dumps(table, indent=1))
    text = markdown(table)
    atomic_write_text(markdown_path, text)
    print(text, end="")
    return table

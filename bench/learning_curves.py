"""Training curves of the ablation's runs, and whether they reached a plateau (issue 14).

Reads every ``<ablation>/<row>/seed<k>/train/<stage>/log.jsonl`` (the trainer's per-step log),
averages each curve over the row's seeds and over windows of steps, and prints a Markdown table:
per row, the losses (``ce2d``, ``ce3d``) and the share of training-batch elements on which the
networks agree with their pseudo-labels (``fit2d``, ``fit3d``: training-scene fit, never ground
truth) in each tenth of the run, and the change of the fits between the last two fifths.
``--png`` draws the same curves (one panel per quantity, one line per row).

A plateau here means: the seed-mean fit of both networks moved by at most ``--tolerance``
(default 0.01, one point of agreement) between steps 60-80 % and 80-100 % of the run. The
schedule decays the learning rate to 0, which flattens every curve at its end; so the table
also shows the whole curve, and a row reads "still rising" when its fit grew by more than the
tolerance.

    PYTHONPATH=. python bench/learning_curves.py --ablation results/demo_learning_fast/ablation \
        --stage stage1 --png docs/figures/ablation_stage1_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

QUANTITIES = ("ce2d", "ce3d", "fit2d", "fit3d")


def read_log(path: Path) -> list[dict]:
    """Records of one ``log.jsonl`` that carry a step (a torn last line is skipped)."""
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            out.append(record)
    return out


def runs_by_row(ablation: Path, stage: str) -> dict[str, list[Path]]:
    """``{row: [log.jsonl of each seed]}`` for the rows that ran ``stage`` themselves (rows that
    reuse another row's stage 1 have no log of their own)."""
    rows: dict[str, list[Path]] = {}
    for log in sorted(ablation.glob(f"*/seed*/train/{stage}/log.jsonl")):
        rows.setdefault(log.parents[3].name, []).append(log)
    return rows


def binned(records: list[dict], key: str, bins: int) -> np.ndarray:
    """Mean of ``key`` in ``bins`` equal windows of the run's steps → (bins,) (NaN where absent)."""
    steps = np.array([r["step"] for r in records], float)
    values = np.array([r.get(key, np.nan) for r in records], float)
    if steps.size == 0:
        return np.full(bins, np.nan)
    edges = np.linspace(steps.min(), steps.max() + 1, bins + 1)
    which = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, bins - 1)
    out = np.full(bins, np.nan)
    for b in range(bins):
        chosen = values[(which == b) & np.isfinite(values)]
        if chosen.size:
            out[b] = chosen.mean()
    return out


def row_curves(logs: list[Path], bins: int) -> dict[str, np.ndarray]:
    """Seed-mean curves of one row: quantity → (bins,)."""
    per_seed = [read_log(p) for p in logs]
    return {q: np.nanmean(np.stack([binned(r, q, bins) for r in per_seed]), axis=0) for q in QUANTITIES}


def plateau(curves: dict[str, np.ndarray], tolerance: float) -> tuple[float, float, str]:
    """(Δfit2d, Δfit3d, verdict) between the last two fifths (bins of tenths: 6-7 vs 8-9)."""
    deltas = []
    for q in ("fit2d", "fit3d"):
        c = curves[q]
        deltas.append(float(np.nanmean(c[8:10]) - np.nanmean(c[6:8])))
    finite = [d for d in deltas if np.isfinite(d)]
    verdict = "plateau" if finite and all(abs(d) <= tolerance for d in finite) else "still rising" if any(d > tolerance for d in finite) else "falling"
    return deltas[0], deltas[1], verdict


def table(rows: dict[str, dict[str, np.ndarray]], seeds: dict[str, int], tolerance: float) -> str:
    """Markdown: one line per row and quantity, the tenths of the run, then the plateau test."""
    lines = ["| row | seeds | quantity | " + " | ".join(f"{10 * i}-{10 * (i + 1)} %" for i in range(10)) + " |",
             "|---|---|---|" + "---|" * 10]
    verdicts = ["", "| row | Δfit2d (60-80 % → 80-100 %) | Δfit3d | verdict (tolerance " + f"{tolerance:g}) |", "|---|---|---|---|"]
    for row, curves in rows.items():
        for q in QUANTITIES:
            if np.isnan(curves[q]).all():
                continue
            lines.append(f"| {row} | {seeds[row]} | {q} | " + " | ".join("" if np.isnan(v) else f"{v:.3f}" for v in curves[q]) + " |")
        d2, d3, verdict = plateau(curves, tolerance)
        verdicts.append(f"| {row} | {d2:+.3f} | {'' if np.isnan(d3) else f'{d3:+.3f}'} | {verdict} |")
    return "\n".join(lines + verdicts)


def figure(rows: dict[str, dict[str, np.ndarray]], out: Path, title: str) -> None:
    """One panel per quantity, one line per row (seed means over tenths of the run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(4 * len(QUANTITIES), 3.2))
    x = np.arange(10) * 10 + 5
    for ax, q in zip(axes, QUANTITIES):
        for row, curves in rows.items():
            if not np.isnan(curves[q]).all():
                ax.plot(x, curves[q], marker="o", ms=3, label=row)
        ax.set_title(q)
        ax.set_xlabel("% of the run's steps")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ablation", type=Path, required=True, help="the ablation folder (<results>/ablation)")
    parser.add_argument("--stage", default="stage1", choices=["stage1", "stage2"])
    parser.add_argument("--tolerance", type=float, default=0.01, help="largest fit change that counts as a plateau")
    parser.add_argument("--png", type=Path, default=None, help="also draw the curves here")
    args = parser.parse_args()
    logs = runs_by_row(args.ablation, args.stage)
    if not logs:
        raise SystemExit(f"{args.ablation}: no */seed*/train/{args.stage}/log.jsonl; run `snakemake ablation` first")
    rows = {row: row_curves(paths, 10) for row, paths in logs.items()}
    print(table(rows, {row: len(paths) for row, paths in logs.items()}, args.tolerance))
    if args.png:
        figure(rows, args.png, f"{args.ablation.parent.name}: {args.stage}, seed means")
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()

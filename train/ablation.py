"""The ablation table: each preset (one row) x each seed → stage 1, predict, stage 2, evaluate.

Rows are config presets (``workflow/configs/ablation/*.yaml``) applied on top of a base config.
Every run lives in ``<out>/runs/<row>/seed<k>/`` and is skipped when its ``eval/metrics.json``
exists, so an interrupted ablation continues; stage-1 runs are shared between rows with the same
stage-1 settings (``<out>/stage1/<hash>/``). The table reports the final checkpoint of each
run (stage 2's when the row enables it, else stage 1's): 2D and 3D mIoU as mean ± sample
standard deviation and min-max over seeds, plus the pipeline's pseudo-labels on the same
samples as the reference row.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.config import deep_merge, load_config, parse_overrides
from pipeline.errors import UserError

log = logging.getLogger(__name__)


def shard_stores(results: str | Path, splits: Sequence[str], roles: Sequence[str]) -> dict[str, list[str]]:
    """Stores of every shard of ``splits`` found under ``results`` (``<results>/<role>/<split>-NNN.zarr``)."""
    results = Path(results)
    prepared = sorted(p for split in splits for p in (results / "prepared").glob(f"{split}-[0-9][0-9][0-9].zarr"))
    if not prepared:
        raise UserError(f"{results}/prepared: no stores of splits {list(splits)} (run `snakemake pseudo_labels` first)")
    return {role: [str(results / role / p.name) for p in prepared] for role in roles}


def run_one(config: dict, results: str | Path, run_dir: Path, shared: Path, progress: bool = False) -> dict:
    """Stage 1 → (predict → stage 2) → evaluate for one config; returns the metrics dict.

    Stage-1 runs (and their predictions) live in ``shared/<stage-1 run hash>/``: rows whose
    stage-1 settings are equal (e.g. "+ switching" and "+ stage 2") share them.
    """
    from train.engine.trainer import run_hash, run_stage
    from train.evaluate import evaluate
    from train.predict import predict_shard

    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.is_file():
        return json.loads(metrics_path.read_text())
    train = config["train"]
    splits = ["train", "val"] if train["transductive"] else ["train"]
    roles = ["prepared", "refined", "points", "sam", "clip"]
    stores = shard_stores(results, splits, roles)
    if not all(Path(p).exists() for p in stores["clip"]):
        stores.pop("clip")
    stage1_dir = shared / run_hash(config, "stage1")
    final = stage1_dir / "final.pt"
    if not final.is_file():
        final = run_stage(config, "stage1", stores, stage1_dir, progress=progress)
    stage2 = train["stage2"]
    if stage2["enabled"]:
        needs = stage2["predictions"] == "frozen" and any(stage2["sources"].get(s, 0) > 0 for s in ("self", "cross"))
        if needs:
            preds = []
            for prep, sam, pts in zip(stores["prepared"], stores["sam"], stores["points"]):
                out = stage1_dir / "predictions" / Path(prep).name
                if not out.exists():
                    predict_shard(final, {"prepared": prep, "sam": sam, "points": pts}, out, refine=train["predict"]["refine"],
                                  device=train["device"], threads=train["threads"])
                preds.append(str(out))
            stores = {**stores, "predictions": preds}
        final = run_stage(config, "stage2", stores, run_dir / "stage2", init=final, progress=progress)
    ev = config["evaluate"]
    eval_stores = shard_stores(results, ev["splits"], ["prepared", "refined", "points", "sam"])
    return evaluate(final, eval_stores, run_dir / "eval", export_benchmark=False, export_ply=False,
                    pseudo_labels=True, device=train["device"], threads=train["threads"])


def _stats(values: list[float]) -> dict:
    arr = np.array(values, dtype=np.float64) * 100
    return {
        "values": [round(float(v), 2) for v in arr],
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def run_ablation(
    base_config: str | Sequence[str] | None,
    presets: Sequence[str],
    results: str,
    out: str,
    seeds: Sequence[int] = (0, 1, 2),
    overrides: Sequence[str] = (),
) -> dict:
    """Run every preset × seed and write ``table.md`` / ``table.json`` into ``out``."""
    import yaml

    out_dir = Path(out)
    rows: dict[str, dict] = {}
    reference = None
    for preset in presets:
        name = Path(preset).stem
        with open(preset, encoding="utf-8") as handle:
            preset_cfg = yaml.safe_load(handle) or {}
        per_seed = []
        for seed in seeds:
            extra = deep_merge(deep_merge(preset_cfg, parse_overrides(overrides)), {"train": {"seed": int(seed)}})
            config = load_config(base_config, extra)
            log.info("ablation row %s seed %d", name, seed)
            metrics = run_one(config, results, out_dir / "runs" / name / f"seed{seed}", out_dir / "stage1")
            per_seed.append(metrics)
            if reference is None:
                reference = {k: metrics["results"][k]["miou"] for k in ("pseudo2d", "pseudo3d", "pseudo2d_all", "pseudo3d_all") if k in metrics["results"]}
        rows[name] = {
            "preset": str(preset),
            "seeds": list(seeds),
            "2d": _stats([m["results"]["2d"]["miou"] for m in per_seed if "2d" in m["results"]]),
            "3d": _stats([m["results"]["3d"]["miou"] for m in per_seed if "3d" in m["results"]]),
            "stage": per_seed[0]["checkpoint"]["stage"],
        }
    table = {"base_config": base_config, "results": str(results), "overrides": list(overrides), "rows": rows,
             "pseudo_labels": {k: 100 * v for k, v in (reference or {}).items()}}
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"Seeds {list(seeds)}; mIoU in percent on {', '.join(load_config(base_config)['evaluate']['splits'])}, final checkpoints; "
        "mean ± sample std (min–max).",
        "",
        "| row | final stage | 2D mIoU | 3D mIoU |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        cells = [f"{row[m]['mean']:.1f} ± {row[m]['std']:.1f} ({row[m]['min']:.1f}–{row[m]['max']:.1f})" for m in ("2d", "3d")]
        lines.append(f"| {name} | {row['stage']} | {cells[0]} | {cells[1]} |")
    ref = table["pseudo_labels"]
    if ref:
        lines.append(
            f"| pseudo-labels (labelled only / all) | – | {ref.get('pseudo2d', float('nan')):.1f} / {ref.get('pseudo2d_all', float('nan')):.1f}"
            f" | {ref.get('pseudo3d', float('nan')):.1f} / {ref.get('pseudo3d_all', float('nan')):.1f} |"
        )
    from pipeline.atomic import atomic_write_text

    atomic_write_text(out_dir / "table.md", "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "table.json", json.dumps(table, indent=1))
    print("\n".join(lines))
    return table

"""bench/learning_curves.py: seed means per row, and the plateau test on training-scene fit."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _log(path: Path, steps: int, fit, ce) -> None:
    path.parent.mkdir(parents=True)
    lines = [json.dumps({"step": s, "fit2d": fit(s), "fit3d": fit(s), "ce2d": ce(s), "ce3d": ce(s)}) for s in range(1, steps + 1)]
    path.write_text("\n".join(lines) + "\n{\"step\": 1")  # a torn last line, as a killed run leaves


def test_rows_seed_means_and_verdicts(tmp_path):
    ablation = tmp_path / "ablation"
    for seed, offset in ((0, 0.0), (1, 0.1)):
        # converged: fit saturates by 40 % of the run; rising: fit grows linearly to the end
        _log(ablation / "a1_flat" / f"seed{seed}" / "train/stage1/log.jsonl", 100, lambda s, o=offset: o + 0.7 * min(1.0, s / 40), lambda s: 1.0)
        _log(ablation / "a2_rising" / f"seed{seed}" / "train/stage1/log.jsonl", 100, lambda s, o=offset: o + 0.5 * s / 100, lambda s: 2.0 - s / 100)
    (ablation / "a3_reuses" / "seed0").mkdir(parents=True)  # a row that reuses another's stage 1 has no log
    png = tmp_path / "curves.png"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "learning_curves.py"), "--ablation", str(ablation), "--png", str(png)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "| a1_flat | +0.000 | +0.000 | plateau |" in out
    assert "still rising" in [line for line in out.splitlines() if line.startswith("| a2_rising | +")][0]
    assert "a3_reuses" not in out
    # seed mean of the flat row's fit in the last tenth: (0.7 + 0.8) / 2
    fit_row = [line for line in out.splitlines() if line.startswith("| a1_flat | 2 | fit2d |")][0]
    assert fit_row.rstrip(" |").endswith("0.750")
    assert png.is_file() and png.stat().st_size > 1000


def test_no_logs_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "learning_curves.py"), "--ablation", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode != 0 and "run `snakemake ablation` first" in proc.stderr

"""bench/gpu_suite.py runs unattended on the CPU (--device cpu --tiny) and writes every section's numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x and x > 0


@pytest.mark.slow
def test_tiny_suite_on_cpu_writes_every_section(tmp_path):
    out = tmp_path / "suite"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_suite.py"), "--device", "cpu", "--tiny", "--threads", "2",
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_suite.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["clip", "sam", "project", "train"]
    for name, result in sections.items():
        assert result["status"] == "ok", (name, result.get("error"))
        assert _number(result["seconds"]) and result["seconds"] <= result["budget_s"] + 30

    clip = sections["clip"]
    assert {(r["batch"], r["precision"]) for r in clip["rows"]} == {(b, p) for b in (1, 8, 32) for p in ("fp32", "bf16")}
    assert all(_number(r["views_per_s"]) for r in clip["rows"])
    assert 0.5 < clip["bf16_vs_fp32_label_agreement"] <= 1.0

    sam = sections["sam"]
    official, ours = sam["rows"][0], sam["rows"][1]
    assert official["method"].startswith("official") and _number(official["s_per_view"])
    assert sum(official["masks_per_view"]) > 0, "the calibrated IoU threshold must leave masks"
    # our stage's masks are the official generator's, in the same order
    assert ours["identical_in_order"] and ours["counts_equal"] and ours["min_matched_iou"] == 1.0
    assert all(_number(r["s_per_view"]) and _number(r["speedup_vs_official"]) for r in sam["rows"])

    project = sections["project"]
    assert len(project["rows"]) == 4 and all(_number(r["ms_per_view"]) for r in project["rows"])
    assert project["rows"][0]["identical_to_baseline"] is None  # OpenScene's own rule: other pairs, by design
    assert all(r["identical_to_baseline"] for r in project["rows"][1:])
    assert _number(project["cuda_over_cpu_kernel"])

    train = sections["train"]
    presets = {r["preset"]: r for r in train["rows"][1:] if r["sparse_backend"] == "torch"}
    assert set(presets) == {"24GB", "80GB"}
    assert all(_number(r["steps_per_s"]) and r["steps_timed"] >= 1 for r in presets.values())
    assert train["spconv"].startswith(("not installed", "installed"))
    on_spconv = [r for r in train["rows"][1:] if r["sparse_backend"] == "spconv"]
    if train["spconv"].startswith("installed ("):  # it imports: the same presets measured on it
        assert {r["preset"] for r in on_spconv} == {"24GB", "80GB"}
        assert all(_number(r["steps_per_s"]) and r["steps_timed"] >= 1 for r in on_spconv)
    else:
        assert not on_spconv

    table = (out / "gpu_suite.md").read_text()
    for name in sections:
        assert f"### {name}: ok" in table
    assert "| ours, batched generator, fp32 |" in table


def test_a_failing_section_is_recorded_and_the_suite_goes_on(tmp_path, monkeypatch):
    """A section that raises after measuring something: its error and partial rows are in the JSON,
    the next section still runs, the exit status says a section failed."""
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_suite

    def broken(ctx):
        ctx.partial["rows"] = [{"batch": 1, "views_per_s": 3.0}]
        raise RuntimeError("CUDA out of memory (simulated)")

    def fine(ctx):
        return {"rows": [{"method": "x", "s_per_view": 1.0}], "points": 1, "views": 1, "depth_size": [1, 1],
                "baseline_doc": "b", "cuda_over_cpu_kernel": 1.0}

    monkeypatch.setattr(gpu_suite, "SECTIONS", {"clip": broken, "project": fine})
    monkeypatch.setitem(gpu_suite.BUDGETS, "clip", 5)
    monkeypatch.setitem(gpu_suite.BUDGETS, "project", 5)
    out = tmp_path / "suite"
    assert gpu_suite.main(["--device", "cpu", "--tiny", "--out", str(out), "--sections", "clip", "project"]) == 1
    report = json.loads((out / "gpu_suite.json").read_text())
    clip, project = report["sections"]["clip"], report["sections"]["project"]
    assert clip["status"] == "failed" and "out of memory" in clip["error"] and clip["rows"] == [{"batch": 1, "views_per_s": 3.0}]
    assert project["status"] == "ok"
    table = (out / "gpu_suite.md").read_text()
    assert "### clip: failed" in table and "Measured before the failure" in table and "### project: ok" in table

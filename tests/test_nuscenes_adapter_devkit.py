"""The adapter's data against the official devkit (its own venv, numpy<2, in a subprocess): the
fixture tree loads in the devkit, and our 32 → 16 mapping (by the names of category.json) and
the official split lists equal the devkit's. (The projection and the export are compared in
tests/test_nuscenes_devkit.py.) Skipped only when ``.venv-devkit`` is absent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.config import validate
from pipeline.datasets import make_adapter
from pipeline.datasets.nuscenes_splits import official_splits
from pipeline.vocab import benchmark, prepared_ground_truth_luts
from tests.nuscenes_fixture import FixtureSpec, write_nuscenes

DEVKIT_PYTHON = Path(__file__).resolve().parents[1] / ".venv-devkit" / "bin" / "python"

SCRIPT = r"""
import json, sys
from nuscenes.nuscenes import NuScenes
from nuscenes.eval.lidarseg.utils import LidarsegClassMapper
from nuscenes.utils.splits import create_splits_scenes

nusc = NuScenes(version=sys.argv[2], dataroot=sys.argv[1], verbose=False)
mapper = LidarsegClassMapper(nusc)
print(json.dumps({"fine_to_coarse": {str(k): int(v) for k, v in mapper.get_fine_idx_2_coarse_idx().items()},
                  "splits": create_splits_scenes(), "samples": len(nusc.sample)}))
"""

pytestmark = pytest.mark.skipif(not DEVKIT_PYTHON.exists(), reason=".venv-devkit absent (.ci/install_devkit.sh builds it)")


def test_mapping_and_splits_equal_the_devkits(tmp_path):
    fx = write_nuscenes(tmp_path / "nuscenes", FixtureSpec(samples_per_scene=2, n_points=100, image_size=(64, 36)))
    script = tmp_path / "devkit_script.py"
    script.write_text(SCRIPT)
    run = subprocess.run([str(DEVKIT_PYTHON), str(script), str(fx.root), fx.spec.version],
                         check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["samples"] == 4
    adapter = make_adapter(validate({"dataset": {"kind": "nuscenes", "root": str(fx.root),
                                                 "nuscenes": {"version": fx.spec.version}}})["dataset"])
    bench = benchmark("nuscenes16")
    lut = prepared_ground_truth_luts(adapter.root_attrs(), bench)["points"]
    assert {str(i): int(r) for i, r in enumerate(bench.to_raw(lut))} == out["fine_to_coarse"]
    for name, scenes in official_splits().items():
        assert list(scenes) == out["splits"][name], name

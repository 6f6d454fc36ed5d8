"""Our nuImages ground truth against the official devkit's ``NuImages.get_segmentation`` (its
own venv, numpy<2, in a subprocess), pixel for pixel, semantic and instance masks, on a tree with
overlapping masks, a null mask and, in a second tree, a category table without some of the 23
object classes (the devkit then renumbers them). Skipped only when ``.venv-devkit`` is absent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets.nuimages import NuImagesAdapter, NuImagesOptions
from tests.nuimages_fixture import OBJECTS, write_nuimages

DEVKIT_PYTHON = Path(__file__).resolve().parents[1] / ".venv-devkit" / "bin" / "python"

SCRIPT = r"""
import json, sys
import numpy as np
from nuimages import NuImages

root, out = sys.argv[1], sys.argv[2]
arrays = {}
for version in ("v1.0-train", "v1.0-val"):
    nuim = NuImages(version=version, dataroot=root, lazy=True, verbose=False)
    for sample in nuim.sample:
        semantic, instance = nuim.get_segmentation(sample["key_camera_token"])
        arrays["sem_" + sample["token"]] = semantic
        arrays["ins_" + sample["token"]] = instance
np.savez(out, **arrays)
print(json.dumps({"samples": len(arrays) // 2}))
"""

pytestmark = pytest.mark.skipif(not DEVKIT_PYTHON.exists(), reason=".venv-devkit absent (.ci/install_devkit.sh builds it)")


def _devkit(tmp_path: Path, root: Path) -> dict[str, np.ndarray]:
    script = tmp_path / "devkit_nuimages.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{root.name}_devkit.npz"
    run = subprocess.run([str(DEVKIT_PYTHON), str(script), str(root), str(out)], check=False, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(out) as data:
        return dict(data)


@pytest.mark.parametrize("categories", [None, OBJECTS + ("vehicle.motorcycle", "flat.driveable_surface", "vehicle.ego")],
                         ids=["all-25-categories", "7-object-categories"])
def test_ground_truth_equals_get_segmentation(tmp_path, categories):
    fx = write_nuimages(tmp_path / "nuimages", seed=3, categories=categories)
    theirs = _devkit(tmp_path, fx.root)
    adapter = NuImagesAdapter(NuImagesOptions(root=fx.root, working_size=(48, 32)))
    compared = 0
    for split, tokens in fx.samples.items():
        for token in tokens:
            sample = adapter.load(token, split)
            semantic, instance = theirs[f"sem_{token}"], theirs[f"ins_{token}"]
            assert semantic.max() > 0 and len(np.unique(semantic)) > 3  # overlaps of several classes to order
            np.testing.assert_array_equal(sample.arrays["views/label"][0], semantic, err_msg=token)
            np.testing.assert_array_equal(sample.arrays["views/instance"][0], instance, err_msg=token)
            compared += 1
    assert compared == 6
    adapter.select("train", fx.samples["train"])
    names = dict((n, i) for i, n in adapter.root_attrs()["nuimages_categories"])
    if categories is None:  # all 25: the numbering of the nuScenes lidarseg fine classes
        assert names["vehicle.car"] == 17 and names["vehicle.truck"] == 23 and names["animal"] == 1
    else:
        assert names["vehicle.truck"] == 7 and names["vehicle.motorcycle"] == 6

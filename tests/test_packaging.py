"""A non-editable install carries the config schema: validation works without the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_schema_and_validates_outside_the_checkout(tmp_path):
    src = tmp_path / "src"  # a copy: setuptools builds in the source tree
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "results", "build", "*.egg-info", "__pycache__", ".snakemake"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("cns_labelfree-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pipeline/schemas/config.schema.yaml" in names
    assert not any(name.startswith("tests/") for name in names)  # fixtures stay out of the package
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    code = ("import pipeline.config as c, sys; assert c.__file__.startswith(sys.argv[1]), c.__file__; "
            "cfg = c.load_config(None); print(cfg['refine']['nesting_order'], cfg['ablation']['seeds'])")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    run = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["part", "[0,", "1,", "2]"]

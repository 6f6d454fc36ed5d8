"""`snakemake --lint` is clean for the shipped configs (the issues' acceptance asks for it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.workflow_helpers import snakemake_env

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("overlay", [None, "workflow/configs/demo_nuscenes.yaml", "workflow/configs/demo_nuimages.yaml"])
def test_lint_is_clean(overlay):
    exe = shutil.which("snakemake", path=str(Path(__import__("sys").executable).parent)) or "snakemake"
    args = [exe, "--lint", "--cores", "1"] + (["--configfile", overlay] if overlay else [])
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=snakemake_env(), timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out[-3000:]

"""The console scripts name themselves in --help; `python -m` names the module."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package, script", [("train", "cns-train"), ("pipeline", "cns-pipeline")])
def test_help_shows_the_name_it_was_started_by(tmp_path, package, script):
    # what pip writes for [project.scripts]: a file named after the script calling main()
    launcher = tmp_path / script
    launcher.write_text(f"import sys\nfrom {package}.__main__ import main\nsys.exit(main())\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    as_script = subprocess.run([sys.executable, str(launcher), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert as_script.returncode == 0 and as_script.stdout.startswith(f"usage: {script} "), as_script.stdout[:200]
    as_module = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert as_module.returncode == 0 and as_module.stdout.startswith(f"usage: python -m {package} "), as_module.stdout[:200]


def test_resume_flags_of_the_training_commands():
    from train.__main__ import build_parser

    stores = [arg for name in ("prepared", "sam", "refined", "points") for arg in (f"--{name}", f"{name}.zarr")]
    parser = build_parser()
    for command, extra in (("stage1", []), ("stage2", ["--init", "s1.pt"])):
        base = [command, "--out", "run", *extra, *stores]
        assert parser.parse_args(base).resume == "auto"
        assert parser.parse_args([*base, "--resume"]).resume == "resume"
        assert parser.parse_args([*base, "--no-resume"]).resume == "fresh"
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--resume", "--no-resume"])

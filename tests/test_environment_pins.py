"""environment.yml and pyproject.toml must pin the same packages the same way."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_same_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pyproject = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {r.replace(" ", "") for r in pip} == {r.replace(" ", "") for r in pyproject}
    assert len({_name(r) for r in pip}) == len(pip)

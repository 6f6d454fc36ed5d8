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


OPTIONAL_IMPORTS = {"MinkowskiEngine", "spconv"}
"""Imported only when present (train.net3d.backend: minkowski, spconv); MinkowskiEngine is built by
.ci/install_minkowski.sh, spconv is the `spconv` extra."""


def test_every_third_party_import_is_declared():
    """Each module that pipeline/ and train/ import (any depth, inside functions too) belongs to the
    standard library, this project, or a distribution pyproject.toml declares (e.g. `referencing`,
    which config.py imports and which jsonschema only happens to bring along)."""
    import ast
    import importlib.metadata
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in [*(REPO / "pipeline").rglob("*.py"), *(REPO / "train").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {n.split(".")[0] for n in names}:
                if top in sys.stdlib_module_names or top in ("pipeline", "train", "__future__") or top in OPTIONAL_IMPORTS:
                    continue
                dists = {_name(d) for d in distributions.get(top, [top])}
                if not dists & declared:
                    missing.setdefault(top, str(path.relative_to(REPO)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"

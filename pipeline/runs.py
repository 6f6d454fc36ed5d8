"""The ablation's runs: one config per (row, seed), and which row's stage 1 each row reuses.

A row is a preset YAML file applied on top of the workflow's config (``ablation.presets``), run
for every seed of ``ablation.seeds``. Rows whose stage-1 settings are equal would train the same
stage 1: the later rows reuse the first one's (its *stage-1 owner*); rows whose stage-1 and predict
settings are both equal would also write the same predictions, and reuse the first one's (its
*owner*). A row that changes only the predict step (e.g. ``train.predict.refine``) thus predicts
with another row's stage-1 networks. Snakemake's ablation rules (workflow/rules/ablation.smk) ask this module; it
reads configs only, never runs anything.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.config import ConfigError, config_hash, deep_merge, read_yaml, validate
from pipeline.stores import trainer_options

ROW_FORCED: dict[str, Any] = {"evaluate": {"export_benchmark": False, "export_ply": False}}
"""Settings every row gets: rows only ablate, they write no benchmark files or PLYs."""


def row_name(preset: str) -> str:
    """A row's name: its preset file name without the extension."""
    return Path(preset).stem


class AblationRuns:
    """The rows of ``config["ablation"]`` and their per-seed configs.

    ``search`` are the folders a relative preset path is looked up in, in order (the working
    directory, then the repository).
    """

    def __init__(self, config: Mapping[str, Any], search: Sequence[str | Path] = (".",)) -> None:
        self.config = config
        self.search = [Path(p) for p in search]
        presets = list(config["ablation"]["presets"])
        self.rows: dict[str, str] = {row_name(p): p for p in presets}
        if len(self.rows) != len(presets):
            raise ConfigError(f"config key ablation.presets: two presets share a file name: {presets}")
        self.seeds: list[int] = [int(s) for s in config["ablation"]["seeds"]]

    def preset_file(self, row: str) -> Path:
        """The preset file of ``row`` (raises :class:`ConfigError` naming it if absent)."""
        if row not in self.rows:
            raise ConfigError(f"unknown ablation row {row!r}; rows: {list(self.rows)}")
        path = Path(self.rows[row])
        for candidate in [path] if path.is_absolute() else [base / path for base in self.search]:
            if candidate.is_file():
                return candidate
        raise ConfigError(f"config key ablation.presets: {path} not found (looked in {[str(p) for p in self.search]})")

    def check_presets(self) -> None:
        """Every row's preset file exists (when the DAG is built, whatever the target); raises
        :class:`ConfigError` naming ``ablation.presets`` and the missing file."""
        for row in self.rows:
            self.preset_file(row)

    @functools.cache
    def row_config(self, row: str, seed: int) -> dict[str, Any]:
        """The validated config of ``row`` with ``train.seed = seed``."""
        preset = read_yaml(self.preset_file(row)) or {}
        if not isinstance(preset, dict):
            raise ConfigError(f"{self.preset_file(row)}: top level must be a mapping")
        merged = deep_merge(deep_merge(deep_merge(dict(self.config), preset), {"train": {"seed": int(seed)}}), ROW_FORCED)
        return validate(merged)

    def _shared(self, row: str, seed: int, commands: tuple[str, ...] = ("stage1", "predict")) -> str:
        cfg = self.row_config(row, seed)
        return config_hash({c: trainer_options(c, cfg) for c in commands})

    def owner(self, row: str, seed: int) -> str:
        """The first row (in table order) whose predictions ``row`` reuses (itself if none): same
        stage-1 and predict settings."""
        key = self._shared(row, seed)
        return next(r for r in self.rows if self._shared(r, seed) == key)

    def stage1_owner(self, row: str, seed: int) -> str:
        """The first row (in table order) whose stage-1 networks ``row`` reuses (itself if none):
        same stage-1 settings."""
        key = self._shared(row, seed, ("stage1",))
        return next(r for r in self.rows if self._shared(r, seed, ("stage1",)) == key)

    def final_stage(self, row: str, seed: int) -> tuple[str, str]:
        """(stage, row) of a row's final checkpoint: its own stage 2 when enabled, else its stage-1 owner's stage 1."""
        if self.row_config(row, seed)["train"]["stage2"]["enabled"]:
            return "stage2", row
        return "stage1", self.stage1_owner(row, seed)

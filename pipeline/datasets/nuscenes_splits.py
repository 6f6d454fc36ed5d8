"""nuScenes splits by scene name: the official ones, or those of ``dataset.nuscenes.split_file``.

The official lists (train 700, val 150, test 150, mini_train 8, mini_val 2 scenes) are data in
``nuscenes_splits.json`` beside this module, taken from nuscenes-devkit 1.2.0's
``nuscenes/utils/splits.py``. ``mini_train`` is not a subset of ``train``. A split file is a
YAML mapping ``split name → [scene names]`` below the dataset root; its splits replace the
official ones.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from pipeline.errors import InputFileError, UserError

SPLITS_FILE = Path(__file__).with_name("nuscenes_splits.json")
OFFICIAL = ("train", "val", "test", "mini_train", "mini_val")


@functools.lru_cache(maxsize=1)
def official_splits() -> dict[str, tuple[str, ...]]:
    """The official splits: name → scene names (``scene-XXXX``), sorted by name."""
    data = json.loads(SPLITS_FILE.read_text(encoding="utf-8"))
    return {name: tuple(data[name]) for name in OFFICIAL}


def read_split_file(path: Path) -> dict[str, tuple[str, ...]]:
    """Read a split file: a YAML mapping of split names to lists of scene names."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "split file not found; fix dataset.nuscenes.split_file (relative to dataset.root) or set it to null") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = str(err).replace("\n", " ")
        raise InputFileError(path, f"cannot read the split file as YAML ({problem})") from None
    if not isinstance(data, dict) or not data:
        raise InputFileError(path, "a split file must map split names to lists of scene names, e.g. 'train: [scene-0001]'")
    out = {}
    for name, scenes in data.items():
        if not isinstance(scenes, list) or not all(isinstance(s, str) and s for s in scenes):
            raise InputFileError(path, f"split {name!r} must be a list of scene names (strings)")
        if len(set(scenes)) != len(scenes):
            raise InputFileError(path, f"split {name!r} lists a scene twice")
        out[str(name)] = tuple(scenes)
    return out


def split_scenes(split: str, split_file: Path | None = None) -> tuple[str, ...]:
    """Scene names of ``split``: from ``split_file`` when given, else the official lists."""
    splits = read_split_file(split_file) if split_file is not None else official_splits()
    if split not in splits:
        where = f"the split file {split_file}" if split_file is not None else "the official nuScenes splits"
        raise UserError(f"config key dataset.splits: split {split!r} is not among {where} ({sorted(splits)}); "
                        "use one of them or add it to dataset.nuscenes.split_file")
    return splits[split]

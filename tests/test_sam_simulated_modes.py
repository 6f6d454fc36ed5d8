"""The simulated SAM's modes (issue 14): merge (the original model) vs oversegment (real-SAM-like).

The mode gives the defaults of the mask-structure options; explicit options override it,
zero_noise overrides both; the store records the mode; the merge mode's masks are those of
the original model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.sam_fixtures import scene, write_prepared

from pipeline.config import ConfigError, load_config, validate
from pipeline.sam.simulated import MODE_DEFAULTS, effective_options, simulate_masks, view_rng
from pipeline.sam.stage import run_sam_stage
from pipeline.stores import StoreReader, stage_options
from pipeline.stores.sam_codecs import decode_rle

REPO = Path(__file__).resolve().parents[1]
# Mode-independent noise off, so every mask is exactly an instance, a union of instances or a slab of one.
EXACT = {"jitter_px": 0, "spurious_per_view": 0.0, "min_area": 0, "feature_noise": 0.0, "class_weight": 0.5}
ORIGINAL = {"merge_prob": 0.1, "split_prob": 0.3, "max_parts": 3, "drop_object_prob": 0.2}


def _grid(rows: int = 6, cols: int = 8, side: int = 16) -> np.ndarray:
    """An instance map tiled by ``rows`` x ``cols`` adjacent squares (ids 1..rows*cols)."""
    ids = np.arange(1, rows * cols + 1, dtype=np.uint16).reshape(rows, cols)
    return np.kron(ids, np.ones((side, side), np.uint16))


def _masks(instance: np.ndarray, options: dict, view: int) -> np.ndarray:
    """Decoded masks (M, H, W) of one simulated view."""
    vm = simulate_masks(instance, {**EXACT, **options}, view_rng(0, "modes", view), "part")
    return np.stack([decode_rle(r, instance.shape) for r in vm.runs]) if len(vm) else np.zeros((0, *instance.shape), bool)


def _structure(instance: np.ndarray, options: dict, views: int = 12) -> dict[str, float]:
    """Per instance over ``views`` views: masks, merged masks, part masks, nested masks (strictly
    inside another mask of the view), sub-parts (inside two others) and part-only objects (parts, no object mask)."""
    counts = dict(masks=0, merged=0, parts=0, nested=0, subparts=0, part_only=0)
    n_inst = 0
    for v in range(views):
        inst = instance if instance.ndim == 2 else instance[v % len(instance)]
        ids = [int(i) for i in np.unique(inst) if i > 0]
        n_inst += len(ids)
        masks = _masks(inst, options, v)
        flat = masks.reshape(len(masks), -1)
        area = flat.sum(1)
        inside = (flat.astype(np.int64) @ flat.T.astype(np.int64)) == area[:, None]  # [a, b]: a within b
        np.fill_diagonal(inside, False)
        strictly = inside & (area[:, None] < area[None, :])
        depth = strictly.sum(1)
        objects = {i: inst == i for i in ids}
        have_object, have_part = set(), set()
        for m in masks:
            owners = np.unique(inst[m])
            owners = owners[owners > 0]
            if len(owners) > 1:
                counts["merged"] += 1
            elif len(owners) == 1 and np.array_equal(m, objects[int(owners[0])]):
                have_object.add(int(owners[0]))
            else:
                counts["parts"] += 1
                have_part.add(int(owners[0]))
        counts["masks"] += len(masks)
        counts["nested"] += int((depth >= 1).sum())
        counts["subparts"] += int((depth >= 2).sum())
        counts["part_only"] += len(have_part - have_object)
    return {k: c / n_inst for k, c in counts.items()}


@pytest.fixture(scope="module")
def instance_maps() -> list[np.ndarray]:
    """A tiled grid (every instance has neighbours) and four random rectangle scenes."""
    return [_grid(), *(scene(seed, 96, 128, n=10)[1] for seed in range(4))]


def test_oversegment_mode_gives_more_parts_and_nesting_fewer_merges(instance_maps):
    for instance in instance_maps:
        merge = _structure(instance, {"mode": "merge"})
        over = _structure(instance, {"mode": "oversegment"})
        assert over["masks"] > 1.4 * merge["masks"], (merge, over)
        assert over["parts"] > 1.8 * merge["parts"], (merge, over)
        assert over["nested"] > 1.5 * merge["nested"], (merge, over)
        assert over["part_only"] > 1.5 * merge["part_only"], (merge, over)
        assert over["subparts"] > 0 and merge["subparts"] == 0, (merge, over)
    grid = instance_maps[0]
    merge, over = _structure(grid, {"mode": "merge"}, views=30), _structure(grid, {"mode": "oversegment"}, views=30)
    assert merge["merged"] > 0.04 and over["merged"] < 0.5 * merge["merged"], (merge, over)


def test_explicit_options_override_the_mode(instance_maps):
    opts = effective_options({"mode": "oversegment", "merge_prob": 0.5, "split_prob": None})
    assert opts["merge_prob"] == 0.5 and opts["split_prob"] == MODE_DEFAULTS["oversegment"]["split_prob"]
    assert opts["max_parts"] == 4 and opts["subpart_prob"] == 0.3
    # behaviour: no splits despite the mode; a forced merge; zero_noise overrides everything
    grid = instance_maps[0]
    no_split = _structure(grid, {"mode": "oversegment", "split_prob": 0.0}, views=4)
    assert no_split["parts"] == 0 and no_split["nested"] == 0 and no_split["subparts"] == 0
    merged = _structure(grid, {"mode": "oversegment", "merge_prob": 1.0, "split_prob": 0.0}, views=4)
    assert merged["merged"] > 0.3
    for v in range(3):
        masks = _masks(grid, {"mode": "oversegment", "zero_noise": True}, v)
        assert len(masks) == grid.max() and all(len(np.unique(grid[m])) == 1 for m in masks)
    with pytest.raises(ValueError, match="mode"):
        effective_options({"mode": "over"})


def test_merge_mode_is_the_original_model(instance_maps):
    defaults = validate({})["sam"]["simulated"]
    assert defaults["mode"] == "merge" and all(defaults[k] is None for k in MODE_DEFAULTS["merge"])
    used = effective_options(defaults)
    assert {k: used[k] for k in ORIGINAL} == ORIGINAL and used["subpart_prob"] == 0.0
    # the schema's null defaults and the original explicit values draw the same masks
    for v, instance in enumerate(instance_maps):
        a = simulate_masks(instance, {**defaults, **EXACT, "jitter_px": 2, "spurious_per_view": 1.0}, view_rng(0, "m", v), "part")
        b = simulate_masks(instance, {**ORIGINAL, **EXACT, "jitter_px": 2, "spurious_per_view": 1.0}, view_rng(0, "m", v), "part")
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.runs, b.runs))


def test_schema_accepts_modes_and_rejects_bad_values():
    for mode in ("merge", "oversegment"):
        assert validate({"sam": {"simulated": {"mode": mode}}})["sam"]["simulated"]["mode"] == mode
    assert validate({"sam": {"simulated": {"merge_prob": None, "max_parts": 5}}})["sam"]["simulated"]["max_parts"] == 5
    for bad, key in [({"mode": "over"}, "sam.simulated.mode"), ({"mode": None}, "sam.simulated.mode"),
                     ({"merge_prob": 1.5}, "sam.simulated.merge_prob"), ({"max_parts": 1}, "sam.simulated.max_parts"),
                     ({"subpart_prob": -0.1}, "sam.simulated.subpart_prob")]:
        with pytest.raises(ConfigError, match=f"config key {key}:"):
            validate({"sam": {"simulated": bad}})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prep") / "train-000.zarr", {"scene0000_00": [10, 11], "scene0001_00": [12]}, h=120, w=160)


def _rle(path: Path) -> list[np.ndarray]:
    reader = StoreReader(path, "sam")
    return [reader.read(sid, "masks/rle") for sid in reader.samples]


def test_store_records_the_mode_and_is_deterministic(prepared, tmp_path):
    over = {"backend": "simulated", "simulated": {"mode": "oversegment", "max_parts": 2}}
    run_sam_stage(prepared, tmp_path / "o1.zarr", over)
    run_sam_stage(prepared, tmp_path / "o2.zarr", over)
    run_sam_stage(prepared, tmp_path / "m.zarr", {"backend": "simulated"})
    attrs = StoreReader(tmp_path / "o1.zarr", "sam").attrs
    assert attrs["simulated"]["mode"] == "oversegment" and attrs["options"]["simulated"]["mode"] == "oversegment"
    assert attrs["simulated"]["split_prob"] == 0.7 and attrs["simulated"]["max_parts"] == 2  # the values used
    merge_attrs = StoreReader(tmp_path / "m.zarr", "sam").attrs
    assert merge_attrs["simulated"]["mode"] == "merge" and merge_attrs["simulated"]["merge_prob"] == 0.1
    assert attrs["config_hash"] != merge_attrs["config_hash"]
    assert all(np.array_equal(a, b) for a, b in zip(_rle(tmp_path / "o1.zarr"), _rle(tmp_path / "o2.zarr")))
    assert not all(np.array_equal(a, b) for a, b in zip(_rle(tmp_path / "o1.zarr"), _rle(tmp_path / "m.zarr")))


def test_overlay_selects_the_mode_and_changes_the_sam_options():
    """The shipped overlay sets the mode; the sam rule's params (its stage options) change with
    it, so Snakemake reruns sam and what follows, while prepare's options stay the same."""
    base = load_config([REPO / "config.yaml"])
    over = load_config([REPO / "config.yaml", REPO / "workflow" / "configs" / "sam_oversegment.yaml"])
    assert over["sam"]["simulated"]["mode"] == "oversegment" and base["sam"]["simulated"]["mode"] == "merge"
    assert stage_options(over, "sam") != stage_options(base, "sam")
    assert stage_options(over, "prepared") == stage_options(base, "prepared")

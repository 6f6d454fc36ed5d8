"""The store contract: the registry, atomic writes, validation, readers that refuse bad stores."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.stores import LAYOUT_VERSION, STORES, StoreError, StoreReader, StoreWriter, registry
from pipeline.stores.registry import stage_options, store_path, trainer_stores


def _prepared_arrays(n_views=3, n_points=50, h=12, w=16):
    rng = np.random.default_rng(0)
    poses = np.repeat(np.eye(4)[None], n_views, axis=0)
    k = np.array([[10.0, 0, 7.5], [0, 10.0, 5.5], [0, 0, 1]])
    return {
        "points/xyz": rng.normal(size=(n_points, 3)).astype(np.float32),
        "points/label": rng.integers(0, 40, n_points).astype(np.uint16),
        "views/frame": np.arange(n_views, dtype=np.int64),
        "views/pose": poses,
        "views/image_size": np.tile([w, h], (n_views, 1)).astype(np.int32),
        "views/intrinsics": np.repeat(k[None], n_views, axis=0),
        "views/native_size": np.tile([w, h], (n_views, 1)).astype(np.int32),
        "views/native_intrinsics": np.repeat(k[None], n_views, axis=0),
        "views/image": rng.integers(0, 255, (n_views, h, w, 3)).astype(np.uint8),
        "views/depth": rng.integers(0, 4000, (n_views, 6, 8)).astype(np.uint16),
        "views/depth_intrinsics": np.repeat(k[None], n_views, axis=0),
    }


def test_round_trip_and_metadata(tmp_path):
    arrays = _prepared_arrays()
    out = tmp_path / "train-000.zarr"
    with StoreWriter(out, "prepared", attrs={"dataset": "demo", "config_hash": "abc"}) as writer:
        writer.add_sample("scene0000_00", arrays, attrs={"split": "train"})
    reader = StoreReader(out, "prepared")
    assert reader.samples == ["scene0000_00"]
    assert reader.attrs["config_hash"] == "abc" and reader.attrs["complete"] is True
    assert reader.attrs["layout_version"] == LAYOUT_VERSION
    for name, data in arrays.items():
        np.testing.assert_array_equal(reader.read("scene0000_00", name), data)
    np.testing.assert_array_equal(reader.read("scene0000_00", "views/depth", 1), arrays["views/depth"][1])
    attrs = reader.sample_attrs("scene0000_00")
    assert attrs["split"] == "train" and attrs["sizes"]["view"] == 3 and attrs["sizes"]["point"] == 50
    assert not reader.has("scene0000_00", "views/label")


def test_file_count_does_not_grow_with_views(tmp_path):
    counts = []
    for n_views in (2, 40):
        out = tmp_path / f"v{n_views}.zarr"
        with StoreWriter(out, "prepared") as writer:
            writer.add_sample("s", _prepared_arrays(n_views=n_views))
        counts.append(sum(len(files) for _, _, files in os.walk(out)))
    assert counts[0] == counts[1]


def test_validation_names_the_problem(tmp_path):
    arrays = _prepared_arrays()
    bad = dict(arrays, **{"views/pose": arrays["views/pose"].astype(np.float32)})
    with pytest.raises(StoreError, match="views/pose must be float64"):
        with StoreWriter(tmp_path / "a.zarr", "prepared") as writer:
            writer.add_sample("s", bad)
    assert not (tmp_path / "a.zarr").exists()
    mismatch = dict(arrays, **{"views/frame": np.arange(5, dtype=np.int64)})
    with pytest.raises(StoreError, match="view"):
        with StoreWriter(tmp_path / "b.zarr", "prepared") as writer:
            writer.add_sample("s", mismatch)
    with pytest.raises(StoreError, match="not declared"):
        with StoreWriter(tmp_path / "c.zarr", "prepared") as writer:
            writer.add_sample("s", dict(arrays, extra=np.zeros(3)))
    missing = {k: v for k, v in arrays.items() if k != "views/pose"}
    with pytest.raises(StoreError, match="required arrays"):
        with StoreWriter(tmp_path / "d.zarr", "prepared") as writer:
            writer.add_sample("s", missing)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temporaries must be cleaned up"


def test_failed_write_keeps_the_previous_store(tmp_path):
    out = tmp_path / "s.zarr"
    with StoreWriter(out, "prepared", attrs={"run": 1}) as writer:
        writer.add_sample("s", _prepared_arrays())
    with pytest.raises(RuntimeError):
        with StoreWriter(out, "prepared", attrs={"run": 2}) as writer:
            writer.add_sample("s", _prepared_arrays())
            raise RuntimeError("killed")
    assert StoreReader(out).attrs["run"] == 1


def test_stale_partials_removed_and_incomplete_refused(tmp_path):
    out = tmp_path / "s.zarr"
    writer = StoreWriter(out, "prepared")
    writer.add_sample("s", _prepared_arrays())
    stale = writer.tmp  # simulate kill -9: never committed nor aborted
    assert stale.exists() and not out.exists()
    with pytest.raises(StoreError, match="incomplete"):
        StoreReader(stale)
    with StoreWriter(out, "prepared") as second:
        second.add_sample("s", _prepared_arrays())
    assert not stale.exists() and out.exists()


def test_reader_errors_name_the_store(tmp_path):
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "nope.zarr"))):
        StoreReader(tmp_path / "nope.zarr")
    out = tmp_path / "s.zarr"
    with StoreWriter(out, "prepared") as writer:
        writer.add_sample("s", _prepared_arrays())
    with pytest.raises(StoreError, match="expected a 'clip' store"):
        StoreReader(out, "clip")


def test_docs_describe_every_declared_array():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-layout.md").read_text()
    for store in STORES.values():
        assert f"`{store.name}`" in doc, store.name
        for spec in store.arrays + store.store_arrays:
            assert f"`{spec.path}`" in doc, f"{store.name}: {spec.path} undocumented"


def test_require_samples_names_the_store_and_the_missing_samples(tmp_path):
    """Stores of one shard from different stages must cover the same samples."""
    paths = {}
    for name, samples in (("full", ["a", "b"]), ("part", ["a"])):
        with StoreWriter(tmp_path / f"{name}.zarr", "prepared") as writer:
            for sample in samples:
                writer.add_sample(sample, _prepared_arrays())
        paths[name] = StoreReader(tmp_path / f"{name}.zarr", "prepared")
    paths["full"].require_samples(paths["part"])  # a superset is fine
    with pytest.raises(StoreError, match=r"part\.zarr: lacks samples \['b'\] of .*full\.zarr; rerun it"):
        paths["part"].require_samples(paths["full"], "rerun it")


def test_registry_is_consistent():
    """Every store read is declared earlier in DAG order; config keys are dotted schema keys."""
    from pipeline.config import validate

    names = list(STORES)
    defaults = validate({})
    for i, store in enumerate(STORES.values()):
        assert set(store.reads) <= set(names[:i]), store.name
        opts = stage_options(defaults, store.name)  # every declared key exists in a validated config
        assert opts, store.name
    assert store_path("results/demo/", "refined", "train-000") == "results/demo/refined/train-000.zarr"
    with pytest.raises(StoreError, match="unknown store 'refine'"):
        store_path("results", "refine", "train-000")


def test_trainer_commands_follow_the_config():
    from pipeline.config import validate

    cfg = validate({})
    assert trainer_stores("stage1") == ("prepared", "clip", "sam", "refined", "points")
    assert "predictions" in trainer_stores("stage2", cfg["train"])  # frozen self/cross sources by default
    online = validate({"train": {"stage2": {"predictions": "online"}}})
    assert "predictions" not in trainer_stores("stage2", online["train"])
    assert registry.required_trainer_stores("stage2", cfg["train"])[-1] == "predictions"
    assert registry.required_trainer_stores("stage2", online["train"]) == ("prepared", "sam", "refined", "points")
    assert registry.trainer_options("predict", cfg)["project"] == {"tie_break": cfg["project"]["tie_break"]}


def test_no_store_role_is_listed_outside_the_registry():
    """Store names appear as string lists only in the registry (one place for roles)."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    names = set(STORES)
    offenders = []
    for path in [*repo.joinpath("pipeline").rglob("*.py"), *repo.joinpath("train").rglob("*.py")]:
        if "stores" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                if len(values & names) >= 3:
                    offenders.append(f"{path.relative_to(repo)}:{node.lineno}")
    assert not offenders, offenders


def test_prepare_options_hold_only_the_dataset_kinds_own_keys():
    """A key added for another dataset kind must not rerun prepare (and all after it) on existing results."""
    from pipeline.config import load_config
    from pipeline.stores.registry import stage_options

    scannet = load_config(["config.yaml"], {})
    options = stage_options(scannet, "prepared")["dataset"]
    assert "frame_skip" in options and "nuscenes" not in options and "nuimages" not in options
    other = load_config(["config.yaml"], {"dataset": {"nuscenes": {"sweeps": 3}, "nuimages": {"versions": {"train": "v9"}}}})
    assert stage_options(other, "prepared") == stage_options(scannet, "prepared")
    own = load_config(["config.yaml"], {"dataset": {"frame_skip": 7}})
    assert stage_options(own, "prepared") != stage_options(scannet, "prepared")
    nus = load_config(["config.yaml", "workflow/configs/demo_nuscenes.yaml"], {})
    options = stage_options(nus, "prepared")["dataset"]
    assert "nuscenes" in options and not {"frame_skip", "label_map", "scans_dir", "nuimages"} & set(options)

"""Damaged stores are refused on read, in one line naming store, sample and array, and moved aside
so the next run recomputes them; every stage that reads a labels store checks its vocabulary."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.stores import STORES, StoreDamaged, StoreError, StoreReader, required_trainer_stores
from pipeline.stores.integrity import DAMAGED_INFIX
from pipeline.vocab import benchmark
from tests.factory import copy_store, write_prepared

REPO = Path(__file__).resolve().parents[1]
P, V = 50, 3


def _prepared(tmp_path: Path) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(P, 3)).astype(np.float32) + 5
    poses = np.repeat(np.eye(4)[None], V, 0)
    poses[:, :3, 3] = rng.normal(size=(V, 3))
    images = {"s0": rng.integers(0, 255, (V, 8, 10, 3), dtype=np.uint8)}
    path = write_prepared(tmp_path / "prepared" / "train-000.zarr", images, poses=poses,
                          points__xyz=xyz, points__label=np.zeros(P, np.uint16))
    return path, {"points/xyz": xyz, "views/pose": poses}


def _files(store: Path, array: str) -> list[Path]:
    return sorted(p for p in (store / "s0" / array).rglob("*") if p.is_file() and p.name != "zarr.json")


def _aside(store: Path) -> list[Path]:
    return sorted(store.parent.glob(store.name + DAMAGED_INFIX + "*"))


def test_every_chunk_is_written_and_read_back(tmp_path):
    path, truth = _prepared(tmp_path)
    reader = StoreReader(path, "prepared")
    assert _files(path, "points/label"), "an all-zero array must still have its chunk file"
    for name, data in truth.items():
        np.testing.assert_array_equal(reader.read("s0", name), data)
    assert not reader.read("s0", "points/label").any()
    assert reader.read("s0", "views/pose", 1).shape == (4, 4)


@pytest.mark.parametrize("array", ["points/xyz", "views/pose"])
def test_deleted_chunk_is_damage_not_fill_values(tmp_path, array):
    path, _ = _prepared(tmp_path)
    for f in _files(path, array):
        f.unlink()
    reader = StoreReader(path, "prepared")
    with pytest.raises(StoreDamaged) as err:
        reader.read("s0", array)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and "sample 's0'" in message and f"array {array!r}" in message and "missing" in message
    assert not path.exists() and len(_aside(path)) == 1, "the damaged store is moved aside"
    assert "rerun" in message and _aside(path)[0].name in message


def test_truncated_chunk_is_named_in_one_line(tmp_path):
    path, _ = _prepared(tmp_path)
    (chunk,) = _files(path, "points/xyz")
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with pytest.raises(StoreDamaged, match=r"sample 's0', array 'points/xyz': a chunk fails to decode.*checksum") as err:
        StoreReader(path, "prepared").read("s0", "points/xyz")
    assert "\n" not in str(err.value) and _aside(path)


def test_altered_byte_fails_the_chunk_checksum(tmp_path):
    path, _ = _prepared(tmp_path)  # views/image is stored uncompressed: only the checksum catches this
    (chunk,) = _files(path, "views/image")
    data = bytearray(chunk.read_bytes())
    data[40] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match="views/image"):
        StoreReader(path, "prepared").read("s0", "views/image", 0)


def test_shape_that_disagrees_with_the_sample_sizes(tmp_path):
    path, _ = _prepared(tmp_path)
    meta_path = path / "s0" / "points" / "xyz" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["shape"] = [P - 1, 3]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreDamaged, match=rf"array 'points/xyz': shape \({P - 1}, 3\) disagrees .*point={P}"):
        StoreReader(path, "prepared").read("s0", "points/xyz")


def test_recorded_array_without_metadata_is_damage(tmp_path):
    path, _ = _prepared(tmp_path)
    shutil.rmtree(path / "s0" / "points" / "label")
    reader = StoreReader(path, "prepared")
    assert reader.has("s0", "points/label")  # the sample records it
    with pytest.raises(StoreDamaged, match="points/label.*metadata is missing"):
        reader.read("s0", "points/label")


def test_a_bad_selection_is_not_damage(tmp_path):
    path, _ = _prepared(tmp_path)
    reader = StoreReader(path, "prepared")
    with pytest.raises(IndexError):
        reader.read("s0", "views/pose", V + 5)
    assert path.exists() and not _aside(path)


def test_rewriting_the_damaged_store_makes_it_readable_again(tmp_path):
    path, truth = _prepared(tmp_path)
    for f in _files(path, "points/xyz"):
        f.unlink()
    with pytest.raises(StoreDamaged):
        StoreReader(path, "prepared").read("s0", "points/xyz")
    _prepared(tmp_path)  # the producer again, as the next run does
    np.testing.assert_array_equal(StoreReader(path, "prepared").read("s0", "points/xyz"), truth["points/xyz"])
    assert len(_aside(path)) == 1  # kept for inspection; never an output


def test_damaged_store_through_the_cli_is_one_line(tmp_path, capsys):
    from tests.train_synthetic import make_stores

    stores = make_stores(tmp_path / "r", samples_per_shard=(1,), n_points=60, n_views=2)["stores"]
    clip, sam = Path(stores["clip"][0]), Path(stores["sam"][0])
    for f in (clip / "scene0000_00" / "views" / "label").rglob("*"):
        if f.is_file() and f.name != "zarr.json":
            f.unlink()
    status = main(["refine", "--clip", str(clip), "--sam", str(sam), "--out", str(tmp_path / "refined.zarr")])
    stderr = capsys.readouterr().err
    (err,) = [line for line in stderr.splitlines() if "error" in line.lower()]  # besides the progress bar
    assert status == 2 and "Traceback" not in stderr and err.startswith("error: ")
    assert str(clip) in err and "sample 'scene0000_00'" in err and "array 'views/label'" in err
    assert not clip.exists() and _aside(clip) and not (tmp_path / "refined.zarr").exists()


def _other_vocabulary(path: str) -> None:
    copy_store(path, path + ".new", None, {"vocabulary": {"benchmark": "nuscenes16", "class_names": ["car"]}})
    shutil.rmtree(path)
    shutil.move(path + ".new", path)


def test_refine_refuses_another_vocabulary_with_the_trainers_message(tmp_path, capsys):
    from tests.train_synthetic import make_stores
    from train.data.stores import open_shards

    stores = make_stores(tmp_path / "r", samples_per_shard=(1,), n_points=60, n_views=2)["stores"]
    _other_vocabulary(stores["clip"][0])
    options = json.dumps({"refine": {}, "vocabulary": {"benchmark": "scannet20"}})
    status = main(["refine", "--clip", stores["clip"][0], "--sam", stores["sam"][0], "--out", str(tmp_path / "x.zarr"), "--options", options])
    stderr = capsys.readouterr().err
    (err,) = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert status == 2 and "Traceback" not in stderr
    assert stores["clip"][0] in err and "vocabulary 'nuscenes16'" in err and "vocabulary.benchmark" in err
    with pytest.raises(StoreError) as trainer:
        open_shards(stores, benchmark("scannet20"), required_trainer_stores("stage1"))
    assert err == f"error: {trainer.value}"
    assert Path(stores["clip"][0]).exists(), "another vocabulary is not damage: the store stays"


def test_refine_and_project_record_the_vocabulary_they_checked(tmp_path):
    from pipeline.refine.stage import refine_shard
    from tests.train_synthetic import make_stores

    stores = make_stores(tmp_path / "r", samples_per_shard=(1,), n_points=60, n_views=2)["stores"]
    out = refine_shard(stores["clip"][0], stores["sam"][0], tmp_path / "refined.zarr", {}, benchmark="scannet20")
    assert StoreReader(out, "refined", benchmark="scannet20").attrs["vocabulary"]["benchmark"] == "scannet20"
    with pytest.raises(StoreError, match="configured for 'nuscenes16'"):
        StoreReader(out, "refined", benchmark="nuscenes16")


def _store_reader_calls(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "StoreReader":
            yield node


def test_every_reader_of_a_labels_store_checks_the_vocabulary():
    """Every StoreReader opened in pipeline/ or train/ either names a store without labels or
    passes ``benchmark=`` (the one vocabulary check); a literal list would drift."""
    unlabelled = {name for name, spec in STORES.items() if not spec.labels}
    offenders = []
    for path in [*(REPO / "pipeline").rglob("*.py"), *(REPO / "train").rglob("*.py")]:
        if path.name == "io.py" and path.parent.name == "stores":
            continue
        for call in _store_reader_calls(path):
            store = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "store"), None)
            literal = isinstance(store, ast.Constant) and store.value in unlabelled
            if not literal and not any(k.arg == "benchmark" for k in call.keywords):
                offenders.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert not offenders, f"StoreReader of a labels store without benchmark=: {offenders}"
    assert any(spec.labels for spec in STORES.values())


WORKER_MESSAGE = "results/prepared/train-000.zarr, sample 's0', array 'points/xyz': chunk file 'c/0/0' is missing"


class _DamagedDataset:
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise StoreDamaged(WORKER_MESSAGE)


def test_damage_in_a_data_loader_worker_is_still_one_line():
    """torch re-raises a worker's error with the worker's traceback in its message; the entry
    prints the original line only."""
    import torch

    from pipeline.entry import one_line

    with pytest.raises(StoreDamaged) as err:
        for _ in torch.utils.data.DataLoader(_DamagedDataset(), num_workers=1):
            pass
    assert "Traceback" in str(err.value)
    assert one_line(err.value) == WORKER_MESSAGE
    assert one_line(StoreDamaged(WORKER_MESSAGE)) == WORKER_MESSAGE

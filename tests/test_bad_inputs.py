"""The bad-input catalogue: every file of the ScanNet format, the config and the checkpoints, broken
one way at a time, each with the outcome the policy promises (docs/data-layout.md, "Input checks").

* ``error``: ``python -m pipeline prepare`` (run in-process) exits with status 2 and one line
  naming the file, and leaves no store (or a config/checkpoint loader raises a one-line
  :class:`~pipeline.errors.UserError` naming the file or key);
* ``counted``: prepare succeeds, the counter is in the sample and root attribute ``input_checks``
  and the manifest, and a warning line names the file (or scene);
* ``ok``: prepare succeeds and counts nothing (cases that must stay accepted).

The slow cases drive the real ``snakemake`` command: other shards complete under
``--keep-going``, a rerun does not take the failed shard as done, and config mistakes stop the
DAG in a few lines before any job runs.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pipeline.demo.generate import DemoOptions, generate_scene, write_meta
from pipeline.errors import InputFileError, UserError

SCENE = "scene0007_00"
OTHER = "scene0008_00"
FRAME = 1  # the victim frame (frames 0..3 exist; no defects)
OPTIONS = DemoOptions(views=4, color_size=(64, 48), depth_size=(40, 30), vertex_spacing=0.4)


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scannet")
    for scene in (SCENE, OTHER):
        generate_scene(root, scene, OPTIONS)
        shutil.rmtree(root / "scans" / scene / "_demo_gt")
    write_meta(root, [SCENE], [OTHER])
    return root


def _dataset(root: Path, **extra) -> dict:
    from pipeline.config import validate

    return validate({"dataset": {"root": str(root), "frame_skip": 1, "working_size": [48, 36], **extra}})["dataset"]


def run_prepare(root: Path, out: Path, capsys, samples=(SCENE,), split="train") -> tuple[int, str]:
    """``python -m pipeline prepare`` in-process → (exit status, stderr)."""
    from pipeline.__main__ import main
    from pipeline.config import canonical_json
    from pipeline.prepare import prepare_options

    options = canonical_json({"dataset": prepare_options(_dataset(root))})
    capsys.readouterr()
    rc = main(["prepare", "--out", str(out), "--shard", f"{split}-000", "--split", split,
               "--samples", *samples, "--options", options, "--threads", "1"])
    return rc, capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Damage: each takes the dataset root and breaks one thing; returns the path the message must name.
# --------------------------------------------------------------------------------------


def scene_path(root: Path, rel: str) -> Path:
    return root / "scans" / SCENE / rel.format(f=FRAME, s=SCENE)


def _save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def _ply(root: Path, which: str = "mesh"):
    from plyfile import PlyData

    path = scene_path(root, "{s}_vh_clean_2.ply" if which == "mesh" else "{s}_vh_clean_2.labels.ply")
    return path, PlyData.read(str(path))


def _write_ply(path: Path, vertex: np.ndarray, faces: np.ndarray | None) -> None:
    from plyfile import PlyData, PlyElement

    elements = [PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (faces.shape[1],))])
        face["vertex_indices"] = faces
        elements.append(PlyElement.describe(face, "face"))
    PlyData(elements).write(str(path))


def _faces(ply) -> np.ndarray:
    return np.stack(ply["face"].data["vertex_indices"]).astype(np.int32)


def _drop_fields(vertex: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    keep = [n for n in vertex.dtype.names if n not in names]
    out = np.empty(len(vertex), dtype=[(n, vertex.dtype[n]) for n in keep])
    for n in keep:
        out[n] = vertex[n]
    return out


def write_text(rel: str, text: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        path = scene_path(root, rel)
        path.write_text(text)
        return path
    return damage


def delete(rel: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        path = scene_path(root, rel)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return path
    return damage


def truncate(rel: str) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        path = scene_path(root, rel)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        return path
    return damage


def png(rel: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], Path]:
    """Rewrite a PNG as ``make(old pixels)``."""
    def damage(root: Path) -> Path:
        path = scene_path(root, rel)
        _save_png(path, make(_read_png(path)))
        return path
    return damage


def matrix(rel: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        path = scene_path(root, rel)
        np.savetxt(path, change(np.loadtxt(path)))
        return path
    return damage


def depth_8bit_all(root: Path) -> Path:
    for path in sorted(scene_path(root, "depth").glob("*.png")):
        _save_png(path, (_read_png(path) // 40).astype(np.uint8))
    return scene_path(root, "depth/0.png")


def rgb_image(rel: str) -> Callable[[Path], Path]:
    return png(rel, lambda a: np.zeros((*a.shape[:2], 3), np.uint8))


def mesh(change: Callable, which: str = "mesh") -> Callable[[Path], Path]:
    """Rewrite the mesh (or labels) ply: ``change(vertex, faces) -> (vertex, faces)``."""
    def damage(root: Path) -> Path:
        path, ply = _ply(root, which)
        faces = _faces(ply) if "face" in ply else None
        vertex, faces = change(np.array(ply["vertex"].data), faces)
        _write_ply(path, vertex, faces)
        return path
    return damage


def _set(vertex: np.ndarray, name: str, index, value) -> np.ndarray:
    vertex[name][index] = value
    return vertex


def _as_float_label(vertex: np.ndarray) -> np.ndarray:
    out = np.empty(len(vertex), dtype=[(n, vertex.dtype[n]) if n != "label" else ("label", "f4") for n in vertex.dtype.names])
    for n in vertex.dtype.names:
        out[n] = vertex[n]
    return out


def root_file(name: str, text: str | None) -> Callable[[Path], Path]:
    """Replace (or, with ``None``, delete) a file at the dataset root."""
    def damage(root: Path) -> Path:
        path = root / name
        path.unlink() if text is None else path.write_text(text)
        return path
    return damage


def unmapped_label_ids(root: Path) -> Path:
    path = scene_path(root, "label-filt/{f}.png")
    labels = _read_png(path).copy()
    labels[:4, :4] = 9999
    _save_png(path, labels.astype(np.uint16))
    return path.parent


def split_duplicate(root: Path) -> Path:
    path = root / "scannetv2_train.txt"
    path.write_text(f"{SCENE}\n{SCENE}\n")
    return path


def pose_not_rigid(root: Path) -> Path:
    return matrix("pose/{f}.txt", lambda m: np.diag([2.0, 2.0, 2.0, 1.0]) @ m)(root)


def untouched(root: Path) -> Path:
    return root


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[Path], Path]
    outcome: str  # error | counted | ok
    message: str = ""  # error: in the message; counted: the counter's name
    count: int = 0  # counted: expected count (0 = any positive)


LABEL = "label-filt/{f}.png"
MESH = "{s}_vh_clean_2.ply"
LABELS = "{s}_vh_clean_2.labels.ply"
TSV = "scannetv2-labels.combined.tsv"

PREPARE_CASES = [
    # colour frames
    Case("color_truncated", truncate("color/{f}.jpg"), "error", "cannot decode image"),
    Case("color_not_an_image", write_text("color/{f}.jpg", "not a jpeg"), "error", "cannot decode image"),
    Case("color_other_size", lambda r: _resave_color(r), "error", "colour image is 32x24"),
    Case("color_missing_depth_kept", delete("color/{f}.jpg"), "counted", "depth_without_color", 1),
    Case("color_folder_missing", delete("color"), "error", "colour frame folder not found"),
    Case("color_folder_empty", lambda r: _empty_color(r), "error", "no N.jpg frames found"),
    # depth
    Case("depth_8bit_all_frames", depth_8bit_all, "error", "depth PNG is 8-bit"),
    Case("depth_8bit_one_frame", png("depth/{f}.png", lambda a: (a // 40).astype(np.uint8)), "error", "depth PNG is 8-bit"),
    Case("depth_missing", delete("depth/{f}.png"), "error", "file not found"),
    Case("depth_rgb", rgb_image("depth/{f}.png"), "error", "single-channel"),
    Case("depth_other_size", png("depth/{f}.png", lambda a: np.zeros((15, 20), np.uint16)), "error", "depth image is 20x15"),
    Case("depth_truncated", truncate("depth/{f}.png"), "error", "cannot decode depth PNG"),
    Case("depth_holes_ok", png("depth/{f}.png", lambda a: np.where(np.arange(a.size).reshape(a.shape) % 3, a, 0).astype(np.uint16)), "ok"),
    # poses
    Case("pose_missing", delete("pose/{f}.txt"), "error", "file not found"),
    Case("pose_3x3", write_text("pose/{f}.txt", "1 0 0\n0 1 0\n0 0 1\n"), "error", "expected 4x4"),
    Case("pose_text", write_text("pose/{f}.txt", "identity\n"), "error", "non-numeric"),
    Case("pose_inf", write_text("pose/{f}.txt", "\n".join(["-inf -inf -inf -inf"] * 4)), "counted", "invalid_pose_views", 1),
    Case("pose_not_rigid", pose_not_rigid, "counted", "invalid_pose_views", 1),
    Case("pose_all_inf", lambda r: _all_poses_inf(r), "error", "no frame with a valid pose"),
    # intrinsics and extrinsics
    Case("intrinsic_color_missing", delete("intrinsic/intrinsic_color.txt"), "error", "file not found"),
    Case("intrinsic_depth_garbled", write_text("intrinsic/intrinsic_depth.txt", "1 2 3"), "error", "expected 4x4"),
    Case("intrinsic_negative_focal", matrix("intrinsic/intrinsic_color.txt", lambda m: m * np.diag([-1, 1, 1, 1])), "error",
         "positive focal lengths"),
    Case("intrinsic_wrong_sensor", matrix("intrinsic/intrinsic_depth.txt", lambda m: m * _pp(4)), "error", "principal point"),
    Case("extrinsic_depth_not_identity", matrix("intrinsic/extrinsic_depth.txt", lambda m: _translated(m)), "error",
         "extrinsic is not identity"),
    Case("extrinsic_color_not_identity", matrix("intrinsic/extrinsic_color.txt", lambda m: _translated(m)), "error",
         "extrinsic is not identity"),
    Case("extrinsics_absent_ok", lambda r: (delete("intrinsic/extrinsic_color.txt")(r), delete("intrinsic/extrinsic_depth.txt")(r))[0], "ok"),
    # mesh ply
    Case("mesh_missing", delete(MESH), "error", "file not found"),
    Case("mesh_empty_file", write_text(MESH, ""), "error", "cannot parse ply"),
    Case("mesh_no_vertices", mesh(lambda v, f: (v[:0], None)), "error", "ply has no vertices"),
    Case("mesh_no_faces", mesh(lambda v, f: (v, None)), "counted", "mesh_without_faces", 1),
    Case("mesh_no_colours", mesh(lambda v, f: (_drop_fields(v, ("red", "green", "blue")), f)), "counted", "mesh_without_colors", 1),
    Case("mesh_no_z", mesh(lambda v, f: (_drop_fields(v, ("z",)), f)), "error", "lack properties ['z']"),
    Case("mesh_nan_vertex", mesh(lambda v, f: (_set(v, "x", 0, np.nan), f)), "error", "not all finite"),
    Case("mesh_quads", mesh(lambda v, f: (v, np.concatenate([f, f[:, :1]], axis=1))), "error", "must be triangles"),
    Case("mesh_face_out_of_range", mesh(lambda v, f: (v, np.where(f == 0, len(v) + 5, f))), "error", "face indices out of range"),
    # labels ply
    Case("labels_vertex_count", mesh(lambda v, f: (v[:-3], f[(f < len(v) - 3).all(axis=1)]), "labels"), "error",
         "vertices, the mesh"),
    Case("labels_outside_nyu40", mesh(lambda v, f: (_set(v, "label", slice(0, 7), 999), f), "labels"), "counted",
         "labels_outside_nyu40", 7),
    Case("labels_no_label_property", mesh(lambda v, f: (_drop_fields(v, ("label",)), f), "labels"), "error",
         "lack properties ['label']"),
    Case("labels_float", mesh(lambda v, f: (_as_float_label(v), f), "labels"), "error", "non-negative integers"),
    Case("labels_absent_ok", delete(LABELS), "ok"),
    # 2D labels (label-filt)
    Case("label_filt_unmapped_raw_id", unmapped_label_ids, "counted", "unmapped_raw_label_pixels"),
    Case("label_filt_missing_one", delete(LABEL), "counted", "missing_label_views", 1),
    Case("label_filt_other_size", png(LABEL, lambda a: np.zeros((10, 10), np.uint16)), "error", "label-filt image is 10x10"),
    Case("label_filt_rgb", rgb_image(LABEL), "error", "single-channel"),
    Case("label_filt_8bit_ok", png(LABEL, lambda a: np.where(a < 256, a, 0).astype(np.uint8)), "ok"),
    Case("instance_filt_truncated", truncate("instance-filt/{f}.png"), "error", "cannot decode instance-filt PNG"),
    # label map (tsv)
    Case("label_map_missing", root_file(TSV, None), "error", "label map not found"),
    Case("label_map_bad_header", root_file(TSV, "a\tb\n1\t2\n"), "error", "header must contain"),
    Case("label_map_not_integer", root_file(TSV, "id\tnyu40id\n1\tone\n"), "error", "line 2: non-integer"),
    # split file and scene folder
    Case("split_duplicate", split_duplicate, "counted", "split_duplicates", 1),
    Case("scene_folder_missing", delete(""), "error", "scene folder not found"),
    # the untouched scene: nothing counted
    Case("clean_scene_ok", untouched, "ok"),
]


def _pp(factor: float) -> np.ndarray:
    out = np.ones((4, 4))
    out[0, 2] = out[1, 2] = factor
    return out


def _translated(m: np.ndarray) -> np.ndarray:
    m = m.copy()
    m[0, 3] += 0.05
    return m


def _resave_color(root: Path) -> Path:
    from PIL import Image

    path = scene_path(root, "color/{f}.jpg")
    with Image.open(path) as img:
        img.resize((32, 24)).save(path)
    return path


def _empty_color(root: Path) -> Path:
    folder = scene_path(root, "color")
    for path in folder.glob("*.jpg"):
        path.unlink()
    return folder


def _all_poses_inf(root: Path) -> Path:
    for path in scene_path(root, "pose").glob("*.txt"):
        path.write_text("\n".join(["-inf -inf -inf -inf"] * 4))
    return scene_path(root, "pose")


@pytest.mark.parametrize("case", PREPARE_CASES, ids=lambda c: c.id)
def test_prepare_catalogue(case: Case, clean_root, tmp_path, capsys, caplog):
    from pipeline.manifest import shard_manifest
    from pipeline.stores import StoreReader

    root = tmp_path / "data"
    shutil.copytree(clean_root, root)
    named = case.damage(root)
    out = tmp_path / "prepared" / "train-000.zarr"
    with caplog.at_level("WARNING"):
        rc, err = run_prepare(root, out, capsys)
    if case.outcome == "error":
        assert rc == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error:")]  # (the rest: the progress bar)
        assert len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"error: {named}: ") and case.message in lines[0], lines[0]
        assert not out.exists() and not list(out.parent.glob(".*partial*"))
        return
    assert rc == 0, err
    reader = StoreReader(out, "prepared")
    counts = reader.attrs["input_checks"]
    manifest = shard_manifest(out).to_pylist()[0]
    if case.outcome == "ok":
        assert not any(counts.values()), counts
        assert "input checks counted" not in caplog.text
        return
    assert counts[case.message] == (case.count or counts[case.message]) > 0, counts
    assert sum(v for k, v in counts.items() if k != case.message) == 0, counts
    if case.message != "split_duplicates":
        assert reader.sample_attrs(SCENE)["input_checks"][case.message] == counts[case.message]
        assert manifest[case.message] == counts[case.message]
    assert str(named) in caplog.text or SCENE in caplog.text
    assert f"{counts[case.message]} {case.message}" in caplog.text  # the shard's one summary line


# --------------------------------------------------------------------------------------
# Split files and membership (read when the DAG is built)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "train, val, message",
    [
        (None, f"{OTHER}\n", "scannetv2_train.txt: split file not found"),
        ("scene 0007\n", f"{OTHER}\n", "invalid scene names"),
        (f"{SCENE}\n", f"{SCENE}\n", "listed in splits 'train' and 'val' (config key dataset.split_files"),
    ],
    ids=["split_missing", "split_bad_name", "split_scene_in_two_splits"],
)
def test_split_catalogue(clean_root, tmp_path, train, val, message):
    from pipeline.membership import split_samples
    from pipeline.shards import assign_shards

    root = tmp_path / "data"
    root.mkdir()
    for name, text in (("scannetv2_train.txt", train), ("scannetv2_val.txt", val)):
        if text is not None:
            (root / name).write_text(text)
    dataset = _dataset(root)
    with pytest.raises(UserError) as err:
        assign_shards(split_samples(dataset), dataset["shards"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_split_duplicate_is_read_once_with_a_warning(clean_root, tmp_path, caplog):
    from pipeline.membership import split_samples

    root = tmp_path / "data"
    shutil.copytree(clean_root, root)
    split_duplicate(root)
    with caplog.at_level("WARNING"):
        assert split_samples(_dataset(root, splits=["train"]))["train"] == [SCENE]
    assert "scannetv2_train.txt: 1 scenes listed more than once" in caplog.text


def test_counts_reach_the_report(tmp_path):
    from pipeline.report.merge import markdown, merge_reports

    shard = {"shard": "train-000", "samples": [SCENE], "class_names": ["a"], "benchmark": "scannet20",
             "nesting_order": "part", "alt_nesting_order": "object", "ground_truth": {"pixels": False, "points": False},
             "coverage": {"pixels": 1, "pixels_in_mask": 1, "points": 1, "points_seen": 1, "points_labelled": 1, "pairs": 1},
             "confusion": {"pixels.clip": [[0, 0]]}}
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, checks in zip(paths, [{"mesh_without_faces": 1}, {"mesh_without_faces": 1, "unmapped_raw_label_pixels": 16}]):
        path.write_text(json.dumps({**shard, "input_checks": checks}))
    report = merge_reports(paths, "train")
    assert report["input_checks"] == {"unmapped_raw_label_pixels": 16, "mesh_without_faces": 2}
    text = markdown(report)
    assert "`unmapped_raw_label_pixels`: 16 pixels: pixel kept" in text
    assert "`mesh_without_faces`: 2 samples: no back-face test" in text
    (tmp_path / "a.json").write_text(json.dumps(shard))  # a shard report without counts (older) still merges
    assert "No suspicious input counted." in markdown(merge_reports(paths[:1], "train"))


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------

CONFIG_CASES = [
    ("unknown_top_key", {"datset": {}}, "config key datset: unknown key; did you mean dataset?"),
    ("unknown_nested_key", {"dataset": {"frame_skp": 2}}, "config key dataset.frame_skp: unknown key; did you mean frame_skip?"),
    ("unknown_deep_key", {"train": {"optim": {"lr": 1}}}, "config key train.optim.lr: unknown key"),
    ("wrong_type", {"dataset": {"frame_skip": "often"}}, "config key dataset.frame_skip:"),
    ("bad_enum", {"vocabulary": {"benchmark": "coco"}}, "config key vocabulary.benchmark:"),
    ("unknown_prompt_class", {"vocabulary": {"prompts": {"chiar": ["chair"]}}}, "config key vocabulary.prompts: unknown class names ['chiar']"),
    ("extra_prompt_is_a_class", {"vocabulary": {"extra_prompts": {"wall": ["brick wall"]}}}, "config key vocabulary.extra_prompts: ['wall'] are classes"),
    ("extra_prompt_drops_nothing", {"vocabulary": {"extra_prompts": {"ceilng": []}}}, "config key vocabulary.extra_prompts: an empty list"),
    ("extra_prompt_dropped_ok", {"vocabulary": {"extra_prompts": {"ceiling": []}}}, None),
    ("synonyms_ok", {"vocabulary": {"prompts": {"otherfurniture": ["furniture", "stool"]}, "extra_prompts": {"lamp": ["lamp"]}}}, None),
]


@pytest.mark.parametrize("name, config, message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_catalogue(name, config, message):
    from pipeline.config import ConfigError, validate

    if message is None:  # accepted: stays accepted
        validate(config)
        return
    with pytest.raises(ConfigError) as err:
        validate(config)
    text = str(err.value)
    assert text.startswith(message), text
    assert "\n" not in text and len(text) < 400 and "Failed validating" not in text


@pytest.mark.parametrize(
    "text, where",
    [
        ("results: r\ndataset: {root: [\n  x: 1\n", ":4:1: YAML syntax error"),
        ("results: r\ndataset:\n  root: a\n   frame_skip: 2\n", ":4:14: YAML syntax error: mapping values are not allowed"),
        ("- a\n- b\n", ": top level must be a mapping"),
        ("dataset:\n\troot: a\n", ":2:1: YAML syntax error"),
    ],
    ids=["yaml_unclosed_bracket", "yaml_bad_indent", "yaml_not_a_mapping", "yaml_tab"],
)
def test_config_file_catalogue(tmp_path, text, where):
    from pipeline.config import ConfigError, load_config

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------------------
# Checkpoints (the loaders' own tests go further: tests/test_clip_checkpoint.py, test_sam_model.py)
# --------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("loader", ["clip", "sam"])
@pytest.mark.parametrize("damage, message", [
    ("missing", "not found"),
    ("pickle_with_code", "refused"),
    ("garbage", ""),
    ("truncated_safetensors", "safetensors"),
], ids=["missing", "pickle_with_code", "garbage", "truncated_safetensors"])
def test_checkpoint_catalogue(tmp_path, loader, damage, message):
    import torch

    from pipeline.clip.checkpoint import read_state_dict as read_clip
    from pipeline.sam.model import read_state_dict as read_sam

    marker = tmp_path / "marker.txt"
    path = tmp_path / ("w.safetensors" if damage == "truncated_safetensors" else "w.pt")
    if damage == "pickle_with_code":
        torch.save({"weight": torch.zeros(1), "x": _Payload(marker)}, path)
        pickle.dumps(_Payload(marker))  # picklable: an unsafe load would run it
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "truncated_safetensors":
        from safetensors.torch import save_file

        save_file({"weight": torch.zeros(64)}, str(path))
        path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(InputFileError) as err:
        (read_clip if loader == "clip" else read_sam)(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text, text
    assert not marker.exists()


# --------------------------------------------------------------------------------------
# Outputs: a full disk names the path
# --------------------------------------------------------------------------------------


def test_disk_full_names_the_output(clean_root, tmp_path):
    """A file-size limit makes every write past 2 KiB fail (EFBIG), as a full disk fails them
    (ENOSPC): prepare exits 2 with one line naming the store, and leaves no partial store."""
    import os
    import resource
    import sys

    from pipeline.config import canonical_json
    from pipeline.prepare import prepare_options

    out = tmp_path / "prepared" / "train-000.zarr"
    options = canonical_json({"dataset": prepare_options(_dataset(clean_root, image_codec="raw"))})

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "prepare", "--out", str(out), "--shard", "train-000", "--split", "train",
         "--samples", SCENE, "--options", options],
        capture_output=True, text=True, preexec_fn=limit, env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {out}: cannot write output (File too large)"), last
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(out.parent.glob(".*partial*"))


def test_atomic_writers_name_the_path_on_enospc(tmp_path, monkeypatch):
    import errno

    from pipeline.atomic import atomic_write_text
    from pipeline.errors import OutputFileError

    target = tmp_path / "report.md"

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OutputFileError) as err:
        atomic_write_text(target, "x")
    assert str(err.value).startswith(f"{target}: cannot write output (No space left on device)")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------
# Through Snakemake (slow): a bad shard under --keep-going, its rerun, config mistakes at DAG build
# --------------------------------------------------------------------------------------


def _snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    from tests.workflow_helpers import snakemake_command, snakemake_env

    return subprocess.run(snakemake_command(workdir, config, *args), capture_output=True, text=True,
                          env=snakemake_env(), timeout=600)


def _workflow_config(**dataset) -> dict:
    return {"results": "results", "dataset": {"root": "data", "shards": {"train": 1, "val": 1}, "frame_skip": 1,
                                              "working_size": [48, 36], "demo": {"enabled": False}, **dataset}}


@pytest.fixture()
def workdir(clean_root, tmp_path) -> Path:
    shutil.copytree(clean_root, tmp_path / "data")
    return tmp_path


@pytest.mark.slow
def test_bad_shard_fails_alone_and_reruns(workdir):
    victim = workdir / "data" / "scans" / OTHER / "depth" / f"{FRAME}.png"  # OTHER is the val scene
    _save_png(victim, (_read_png(victim) // 40).astype(np.uint8))
    proc = _snakemake(workdir, _workflow_config(), "prepare", "--keep-going")
    assert proc.returncode != 0
    log = (workdir / "results" / "logs" / "prepare" / "val-000.log").read_text()
    assert f"error: data/scans/{OTHER}/depth/{FRAME}.png: depth PNG is 8-bit" in log
    assert (workdir / "results" / "prepared" / "train-000.zarr").is_dir()  # the other shard completed
    assert (workdir / "results" / "manifests" / "train-000.parquet").is_file()
    assert not (workdir / "results" / "prepared" / "val-000.zarr").exists()
    assert not list((workdir / "results" / "prepared").glob(".*partial*"))
    rerun = _snakemake(workdir, _workflow_config(), "prepare", "-n")
    out = rerun.stdout + rerun.stderr
    assert out.count("rule prepare_shard:") == 1 and "shard=val-000" in out, out[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, expected",
    [
        ({"dataset": {"frame_skp": 2}}, "config key dataset.frame_skp: unknown key; did you mean frame_skip?"),
        ({"vocabulary": {"prompts": {"chiar": ["chair"]}}}, "config key vocabulary.prompts: unknown class names ['chiar']"),
        ({"remove": TSV}, f"config key dataset.label_map: data/{TSV} not found"),
        ({}, None),
    ],
    ids=["unknown_key", "unknown_prompt_class", "label_map_missing", "demo_disabled_quiet"],
)
def test_config_mistakes_stop_the_dag(workdir, change, expected):
    from pipeline.config import deep_merge

    if "remove" in change:
        (workdir / "data" / change.pop("remove")).unlink()
    proc = _snakemake(workdir, deep_merge(_workflow_config(), change), "all", "-n")
    out = proc.stdout + proc.stderr
    if expected is None:
        assert proc.returncode == 0, out[-3000:]
        assert "demo_meta" not in out and "localrules" not in out and "Warning" not in out
        return
    assert proc.returncode != 0 and expected in out, out[-3000:]
    assert "Failed validating" not in out and not re.search(r"(?m)^rule \w+:", out)  # no job scheduled
    assert len(out[out.index("Building DAG") if "Building DAG" in out else 0:].splitlines()) < 15, out


def test_policy_table_lists_every_counter():
    from pipeline.input_checks import COUNTED

    text = (Path(__file__).resolve().parents[1] / "docs" / "data-layout.md").read_text()
    table = text[text.index("## Input checks"):text.index("## Fitting other datasets")]
    assert [c.name for c in COUNTED if f"counted `{c.name}`" not in table] == []

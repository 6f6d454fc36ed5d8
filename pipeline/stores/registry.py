"""The store registry: every store of a shard, declared once, and everything that follows from it.

One store per stage output per shard, ``<results>/<name>/<shard>.zarr`` (:func:`store_path`).
Its ``name`` is the directory, the trainer's role, the CLI option (``--refined``) and the
root attribute ``store``; nothing else names stores. Each declaration says which stage writes
it, which stores that stage reads and which config keys its content depends on: Snakemake
rules take their inputs and ``--options`` from here (:func:`stage_options`), the trainer its
stores (:func:`trainer_stores`). ``docs/data-layout.md`` documents every array; a test keeps
the two in step.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from pipeline.stores.spec import StoreError, StoreSpec
from pipeline.stores.spec import array as _a

LAYOUT_VERSION: int = 2
"""Bumped whenever an existing array changes meaning, dtype or shape, or the root attributes change
(2: root attribute ``store`` holds the registry name; was ``stage``)."""

PREPARED = StoreSpec(
    "prepared",
    "prepare",
    "One sample's geometry, views and raw ground truth, as read from the dataset.",
    (
        _a("points/xyz", "float32", "point,3", "point positions in the sample frame, metres", required=False),
        _a("points/rgb", "uint8", "point,3", "point colours", required=False),
        _a("points/intensity", "float32", "point", "lidar intensity", required=False),
        _a("points/ring", "uint8", "point", "lidar ring (beam) index", required=False),
        _a("points/label", "uint16", "point", "raw point label ids (ScanNet: nyu40; 0 = unannotated)", required=False),
        _a("mesh/faces", "int32", "face,3", "triangle vertex indices into points (ScanNet meshes)", required=False),
        _a("views/frame", "int64", "view", "frame number in the source sequence (camera index for multi-camera samples)"),
        _a("views/pose", "float64", "view,4,4", "camera-to-sample-frame pose (OpenCV camera axes)"),
        _a("views/image_size", "int32", "view,2", "working-resolution image size (W, H)"),
        _a("views/intrinsics", "float64", "view,3,3", "colour intrinsics at the working resolution"),
        _a("views/native_size", "int32", "view,2", "image size (W, H) as read from the dataset"),
        _a("views/native_intrinsics", "float64", "view,3,3", "colour intrinsics at the native resolution"),
        _a("views/image_bytes", "uint8", "byte", "encoded images (JPEG or PNG) at the working resolution, concatenated", required=False, compress=False),
        _a("views/image_offsets", "int64", "view+1", "view i's encoded image is image_bytes[off[i]:off[i+1]]", required=False),
        _a("views/image", "uint8", "view,H,W,3", "raw RGB images at the working resolution (image_codec 'raw')", required=False),
        _a("views/depth", "uint16", "view,Hd,Wd", "depth images, native depth resolution, units of 1/depth_scale m; 0 = missing", required=False),
        _a("views/depth_intrinsics", "float64", "view,3,3", "depth intrinsics at the native depth resolution", required=False),
        _a("views/label", "uint16", "view,H,W", "raw 2D label ids at the working resolution (ScanNet label-filt ids; nearest resize)", required=False),
        _a("views/instance", "uint16", "view,H,W", "2D instance ids at the working resolution (0 = none; nearest resize)", required=False),
    ),
    reads=(),
    config=tuple(f"dataset.{k}" for k in ("kind", "name", "root", "scans_dir", "label_map", "frame_skip", "working_size", "image_codec", "jpeg_quality", "nuscenes", "nuimages")),
    trainer_arrays=("points/xyz",),
)

CLIP = StoreSpec(
    "clip",
    "clip",
    "Dense CLIP pseudo-labels per view (MaskCLIP), or their simulated stand-in.",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "benchmark class index per pixel (255 = ignore): argmax prompt row of the bilinearly upsampled scores, mapped to its class"),
        _a("views/confidence", "float16", "view,Hl,Wl", "max over prompt rows of softmax(upsampled scores), scores = 100 * cosine"),
        _a("views/logits", "float16", "view,C,Hg,Wg", "scores per prompt row (C = prompts) on the ViT patch grid: 100 * cosine, or log-probabilities after key smoothing (optional)", required=False),
    ),
    reads=("prepared",),
    config=("clip", "vocabulary"),
    labels=True,
)

SAM = StoreSpec(
    "sam",
    "sam",
    "SAM automatic masks, segment-id maps and encoder feature maps per view; codecs in pipeline.stores.sam_codecs.",
    (
        _a("views/mask_offsets", "int64", "view+1", "masks of view i are masks[off[i]:off[i+1]]"),
        _a("masks/rle_offsets", "int64", "mask+1", "mask m's run lengths are masks/rle[off[m]:off[m+1]]"),
        _a("masks/rle", "uint32", "run", "row-major run lengths at label resolution, starting with a background run"),
        _a("masks/area", "int64", "mask", "mask area in pixels at label resolution"),
        _a("masks/bbox", "int32", "mask,4", "mask box (x, y, w, h) at label resolution, w = x1 - x0 of the inclusive extent"),
        _a("masks/predicted_iou", "float32", "mask", "SAM's predicted IoU"),
        _a("masks/stability_score", "float32", "mask", "SAM's stability score"),
        _a("views/segments", "int32", "view,Hl,Wl", "segment id (mask index within the view, -1 = none) in the store's nesting order"),
        _a("views/features", "int8", "view,Hc,Wc,C", "encoder features of the valid (unpadded) cells: int8 PCA coefficients"),
        _a("views/feature_scale", "float16", "view,Hc,Wc", "per-cell scale: coefficients = features * feature_scale"),
    ),
    reads=("prepared",),
    config=("sam",),
    store_arrays=(
        _a("_store/feature_basis", "float32", "C,256", "PCA basis: feature = coefficients @ basis + mean (identity when not reduced)"),
        _a("_store/feature_mean", "float32", "256", "mean added back after the basis (zeros when not reduced)"),
    ),
)

REFINED = StoreSpec(
    "refined",
    "refine",
    "CLIP labels max-voted inside SAM masks.",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "refined class index per pixel in the default nesting order (255 = ignore)"),
        _a("views/label_alt", "uint8", "view,Hl,Wl", "refined labels in the other nesting order (for the report)", required=False),
    ),
    reads=("clip", "sam"),
    config=("refine", "vocabulary.benchmark"),
    labels=True,
)

POINTS = StoreSpec(
    "points",
    "project",
    "2D labels carried to points by projection, and the pixel<->point pairs.",
    (
        _a("points/label", "uint8", "point", "multi-view majority of refined labels (255 = unseen or ignore)"),
        _a("points/label_clip", "uint8", "point", "multi-view majority of raw CLIP labels"),
        _a("points/votes", "uint16", "point", "number of views that see the point with a label"),
        _a("points/agreement", "float16", "point", "share of votes for the winning refined label"),
        _a("points/seen", "bool", "point", "seen by at least one view"),
        _a("views/pair_offsets", "int64", "view+1", "pairs of view i are pairs[off[i]:off[i+1]]"),
        _a("pairs/point", "int32", "pair", "point index of each pixel<->point pair"),
        _a("pairs/pixel", "int32", "pair", "flat pixel index y * Wl + x at label resolution"),
    ),
    reads=("prepared", "clip", "refined"),
    config=("project", "refine.ignore", "vocabulary.benchmark"),
    labels=True,
)

PREDICTIONS = StoreSpec(
    "predictions",
    "predict",
    "Frozen stage-1 network predictions (SAM-refined), the stage-2 self/cross-training targets (docs/data-layout.md).",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "2D network prediction per pixel, refined by SAM segments"),
        _a("views/label_raw", "uint8", "view,Hl,Wl", "2D network prediction per pixel, unrefined", required=False),
        _a("views/label_3d", "uint8", "view,Hl,Wl", "3D prediction carried to pixels through the pairs, refined by SAM segments (255 = no pair)"),
        _a("points/label", "uint8", "point", "3D network prediction per point, refined: majority of views/label_3d over its pairs (raw where unseen)"),
        _a("points/label_raw", "uint8", "point", "3D network prediction per point, unrefined", required=False),
        _a("points/label_2d", "uint8", "point", "majority of the refined 2D prediction over the point's pairs (255 = unseen)"),
    ),
    reads=("prepared", "sam", "points"),
    config=("train.predict", "train.device", "train.threads", "refine.ignore", "project.tie_break"),
    labels=True,
)

STORES: dict[str, StoreSpec] = {s.name: s for s in (PREPARED, CLIP, SAM, REFINED, POINTS, PREDICTIONS)}
"""Every store, by name, in DAG order."""

PSEUDO_LABEL_STORES: tuple[str, ...] = ("clip", "sam", "refined", "points")
"""The stores the ``pseudo_labels`` target builds for every shard (after ``prepared``)."""

IMAGE_ONLY_KINDS: tuple[str, ...] = ("nuimages",)
"""Dataset kinds whose samples have no points: no ``points`` store, no project stage."""


def pseudo_label_stores(kind: str) -> tuple[str, ...]:
    """The stores ``pseudo_labels`` builds for a dataset of ``kind`` (``points`` only with points)."""
    return tuple(s for s in PSEUDO_LABEL_STORES if not (s == "points" and kind in IMAGE_ONLY_KINDS))


def store_spec(name: str) -> StoreSpec:
    """The :class:`StoreSpec` called ``name``."""
    try:
        return STORES[name]
    except KeyError:
        raise StoreError(f"unknown store {name!r}; known: {list(STORES)}") from None


def vocabulary_record(benchmark: str) -> dict[str, Any]:
    """The root attribute ``vocabulary`` a labels store records: ``{"benchmark", "class_names"}``."""
    from pipeline.vocab import benchmark as _benchmark

    try:
        bench = _benchmark(benchmark)
    except KeyError as err:
        raise StoreError(f"vocabulary.benchmark: {err.args[0]}") from None
    return {"benchmark": bench.name, "class_names": list(bench.class_names)}


def check_vocabulary(attrs: Mapping[str, Any], path: Any, benchmark: str, class_names: Any = None) -> bool:
    """The one vocabulary check of a labels store: raise :class:`StoreError` (naming ``path``) if its
    root ``attrs`` record another benchmark than ``benchmark`` or other class names than its (or
    ``class_names``); returns whether they record a vocabulary at all. Every stage that reads a
    labels store runs it (through ``StoreReader(path, store, benchmark=...)``)."""
    vocab = attrs.get("vocabulary")
    if not isinstance(vocab, Mapping):
        return False
    if vocab.get("benchmark") not in (None, benchmark):
        raise StoreError(
            f"{path}: made for vocabulary {vocab.get('benchmark')!r}, but this run is configured for "
            f"{benchmark!r} (vocabulary.benchmark); rerun the pipeline or fix the config"
        )
    names = vocab.get("class_names")
    wanted = list(class_names) if class_names is not None else vocabulary_record(benchmark)["class_names"]
    if names is not None and list(names) != wanted:
        raise StoreError(
            f"{path}: its class names {list(names)[:4]}... differ from benchmark {benchmark!r}'s; "
            "the labels would mean other classes. Rerun the pipeline with this vocabulary"
        )
    return True


def store_path(results: str, name: str, shard: str) -> str:
    """Path of store ``name`` of ``shard`` under ``results``: ``<results>/<name>/<shard>.zarr``."""
    store_spec(name)
    return f"{str(results).rstrip('/')}/{name}/{shard}.zarr"


def shard_of(path: str) -> str:
    """The shard a store path belongs to (its file name without ``.zarr``)."""
    tail = str(path).rstrip("/").rsplit("/", 1)[-1]
    return tail[: -len(".zarr")] if tail.endswith(".zarr") else tail


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise StoreError(f"config key {dotted} is missing (validate the config first)")
        node = node[part]
    return node


def stage_options(config: Mapping[str, Any], name: str, missing_ok: bool = False) -> dict[str, Any]:
    """The config keys store ``name`` depends on, as a nested dict (what its stage's ``--options`` gets).

    ``stage_options(cfg, "sam") == {"sam": cfg["sam"]}``; dotted keys keep only that key
    (``train.predict`` → ``{"train": {"predict": ...}}``); ``prepared`` keeps only its own dataset
    kind's keys (:data:`pipeline.datasets.KIND_KEYS`). ``missing_ok`` skips keys the config
    lacks (an unvalidated section); otherwise they raise :class:`StoreError`.
    """
    out: dict[str, Any] = {}
    for dotted in store_spec(name).config:
        try:
            value = _get(config, dotted)
        except StoreError:
            if missing_ok:
                continue
            raise
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = copy.deepcopy(value)
    if name == "prepared" and isinstance(out.get("dataset"), dict):
        from pipeline.datasets import other_kinds_keys

        for key in other_kinds_keys(str(out["dataset"].get("kind", "scannet"))):
            out["dataset"].pop(key, None)
    return out


# --------------------------------------------------------------------------------------
# What the trainer's commands read
# --------------------------------------------------------------------------------------

TRAINER_COMMANDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "stage1": (("prepared", "refined", "points", "sam"), ("clip",)),
    "stage2": (("prepared", "refined", "points", "sam"), ("clip", "predictions")),
    "predict": (PREDICTIONS.reads, ()),
    "evaluate": (("prepared",), ("refined", "points", "sam")),
}
"""Per trainer command: (stores it always needs, stores it may be given). ``clip`` serves its
vocabulary record, and the targets when ``train.data.pseudo_labels`` is ``clip``; ``predictions``
are needed when :func:`stage2_needs_predictions`."""


def stage2_needs_predictions(train: Mapping[str, Any]) -> bool:
    """True if stage 2 reads frozen ``predictions`` stores: it is enabled, its predictions are
    ``frozen`` and it has a self- or cross-training source (``train`` is the config section)."""
    stage2 = train["stage2"]
    sources = stage2.get("sources") or {}
    return bool(stage2["enabled"]) and stage2["predictions"] == "frozen" and any(float(sources.get(s, 0)) > 0 for s in ("self", "cross"))


def trainer_stores(command: str, train: Mapping[str, Any] | None = None, image_only: bool = False) -> tuple[str, ...]:
    """The stores a trainer command reads, in registry order. ``train`` (the config section) decides
    whether ``stage2`` reads ``predictions``; without it the optional stores are included.
    ``image_only`` (a dataset of :data:`IMAGE_ONLY_KINDS`): no ``points`` store."""
    if command not in TRAINER_COMMANDS:
        raise StoreError(f"unknown trainer command {command!r}; known: {list(TRAINER_COMMANDS)}")
    required, optional = TRAINER_COMMANDS[command]
    wanted = set(required) | set(optional)
    if command == "stage2" and train is not None and not stage2_needs_predictions(train):
        wanted.discard("predictions")
    if image_only:
        wanted.discard("points")
    return tuple(name for name in STORES if name in wanted)


def required_trainer_stores(command: str, train: Mapping[str, Any] | None = None, image_only: bool = False) -> tuple[str, ...]:
    """The stores a trainer command cannot run without (``stage2`` adds ``predictions`` when needed,
    ``stage1``/``stage2`` add ``clip`` for ``train.data.pseudo_labels: clip``; ``image_only`` drops
    ``points``)."""
    required = set(TRAINER_COMMANDS[command][0]) if command in TRAINER_COMMANDS else set(trainer_stores(command))
    if command == "stage2" and train is not None and stage2_needs_predictions(train):
        required.add("predictions")
    if command in ("stage1", "stage2") and train is not None and (train.get("data") or {}).get("pseudo_labels") == "clip":
        required.add("clip")
    if image_only:
        required.discard("points")
    return tuple(name for name in STORES if name in required)


def trainer_options(command: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The config sections a trainer command's result depends on (its ``--options``; a change reruns it).

    ``stage1``: ``train`` without the stage-2 and predict keys; ``stage2``: ``train`` without the
    predict keys, and ``refine.ignore`` (its segment refinement of online predictions);
    ``predict``: :func:`stage_options` of ``predictions``; ``evaluate``: ``evaluate`` and the
    device keys. All carry ``vocabulary.benchmark``.
    """
    train = config["train"]
    vocab = {"vocabulary": {"benchmark": config["vocabulary"]["benchmark"]}}
    if command == "stage1":
        return {"train": {k: copy.deepcopy(v) for k, v in train.items() if k not in ("stage2", "predict")}, **vocab}
    if command == "stage2":
        return {"train": {k: copy.deepcopy(v) for k, v in train.items() if k != "predict"}, "refine": {"ignore": config["refine"]["ignore"]}, **vocab}
    if command == "predict":
        return {**stage_options(config, "predictions"), **vocab}
    if command == "evaluate":
        return {"evaluate": copy.deepcopy(config["evaluate"]), "train": {"device": train["device"], "threads": train["threads"]}, **vocab}
    raise StoreError(f"unknown trainer command {command!r}; known: {list(TRAINER_COMMANDS)}")

"""The Zarr store layout: the one module that owns every store's structure.

One store per stage per shard (``<results>/<stage>/<shard>.zarr``), Zarr format 3, written by a
single process. Inside a store, one group per sample (its id), holding the arrays that the
stage's :class:`StageSpec` declares. Ragged data are flat arrays plus offsets. Every array is
one Zarr *shard* (one file) cut into inner chunks (one per view for per-view arrays, about
1 MiB otherwise), so a store holds a few files per array and sample, whatever the number of
views, and a reader still fetches a single view without reading the others.

Writers are atomic: :class:`StoreWriter` builds the store under a hidden temporary sibling
(``.<name>.partial-<pid>-<random>``) and renames it into place only after every sample was
written and the root attributes say ``complete: true``. A killed job leaves only the hidden
temporary, which the next writer of the same path removes; readers refuse stores that lack
``complete`` or carry another layout version. ``docs/data-layout.md`` documents this module;
a test keeps the two in step.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from pipeline.atomic import partial_path, remove_stale_partials, replace
from pipeline.errors import UserError

LAYOUT_VERSION: int = 1
"""Bumped whenever an existing array changes meaning, dtype or shape."""

_CHUNK_BYTES = 1 << 20
_SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StoreError(UserError):
    """A store is missing, incomplete, of another stage or layout version, or lacks an array."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a sample group.

    ``dims`` names each axis. Named sizes must agree across a sample's arrays: ``view`` (V),
    ``point`` (P), ``pair``, ``mask``, ``run``, ``byte``, ``face``, image sizes ``H``/``W``
    (colour, working resolution), ``Hd``/``Wd`` (depth), ``Hl``/``Wl`` (label maps), ``Hc``/
    ``Wc`` (SAM embedding cells), ``C`` (channels). ``view+1`` / ``mask+1`` are CSR offsets.
    Integer strings are fixed sizes.
    """

    path: str
    dtype: str
    dims: tuple[str, ...]
    doc: str
    required: bool = True
    compress: bool = True

    def check(self, array: np.ndarray, sizes: dict[str, int], where: str) -> None:
        """Validate dtype/rank/sizes of ``array``; records named sizes into ``sizes``."""
        if array.dtype != np.dtype(self.dtype):
            raise StoreError(f"{where}: {self.path} must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.dims):
            raise StoreError(f"{where}: {self.path} must have dims {self.dims}, got shape {array.shape}")
        for dim, size in zip(self.dims, array.shape):
            if dim.isdigit():
                if size != int(dim):
                    raise StoreError(f"{where}: {self.path} axis {dim!r} must be {dim}, got {size}")
                continue
            name, extra = (dim[:-2], 1) if dim.endswith("+1") else (dim, 0)
            known = sizes.setdefault(name, size - extra)
            if known != size - extra:
                raise StoreError(f"{where}: {self.path} has {name}={size - extra}, other arrays say {known}")


@dataclass(frozen=True)
class StageSpec:
    """The arrays a stage's store holds per sample, plus store-level arrays (group ``_store``)."""

    name: str
    doc: str
    arrays: tuple[ArraySpec, ...]
    store_arrays: tuple[ArraySpec, ...] = field(default=())

    def spec(self, path: str, store_level: bool = False) -> ArraySpec:
        for item in self.store_arrays if store_level else self.arrays:
            if item.path == path:
                return item
        raise StoreError(f"stage {self.name!r} declares no array {path!r}")


def _a(path: str, dtype: str, dims: str, doc: str, required: bool = True, compress: bool = True) -> ArraySpec:
    return ArraySpec(path, dtype, tuple(dims.split(",")) if dims else (), doc, required, compress)


# --------------------------------------------------------------------------------------
# Stage specs. Every array any stage writes is declared here and only here.
# --------------------------------------------------------------------------------------

PREPARE = StageSpec(
    "prepare",
    "One sample's geometry, views and raw ground truth, as read from the dataset.",
    (
        _a("points/xyz", "float32", "point,3", "point positions in the sample frame, metres", required=False),
        _a("points/rgb", "uint8", "point,3", "point colours", required=False),
        _a("points/intensity", "float32", "point", "lidar intensity", required=False),
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
)

CLIP = StageSpec(
    "clip",
    "Dense CLIP pseudo-labels per view (MaskCLIP), or their simulated stand-in.",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "benchmark class index per pixel (255 = ignore): argmax prompt row of the bilinearly upsampled scores, mapped to its class"),
        _a("views/confidence", "float16", "view,Hl,Wl", "max over prompt rows of softmax(upsampled scores), scores = 100 * cosine"),
        _a("views/logits", "float16", "view,C,Hg,Wg", "scores per prompt row (C = prompts) on the ViT patch grid: 100 * cosine, or log-probabilities after key smoothing (optional)", required=False),
    ),
)

SAM = StageSpec(
    "sam",
    "SAM automatic masks, segment-id maps and encoder feature maps per view (docs/data-layout.md).",
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
    (
        _a("_store/feature_basis", "float32", "C,256", "PCA basis: feature = coefficients @ basis + mean (identity when not reduced)"),
        _a("_store/feature_mean", "float32", "256", "mean added back after the basis (zeros when not reduced)"),
    ),
)

REFINE = StageSpec(
    "refine",
    "CLIP labels max-voted inside SAM masks.",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "refined class index per pixel in the default nesting order (255 = ignore)"),
        _a("views/label_alt", "uint8", "view,Hl,Wl", "refined labels in the other nesting order (for the report)", required=False),
    ),
)

POINTS = StageSpec(
    "points",
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
)

PREDICTIONS = StageSpec(
    "predictions",
    "Frozen stage-1 network predictions (SAM-refined), the stage-2 self/cross-training targets (docs/data-layout.md).",
    (
        _a("views/label", "uint8", "view,Hl,Wl", "2D network prediction per pixel, refined by SAM segments"),
        _a("views/label_raw", "uint8", "view,Hl,Wl", "2D network prediction per pixel, unrefined", required=False),
        _a("views/label_3d", "uint8", "view,Hl,Wl", "3D prediction carried to pixels through the pairs, refined by SAM segments (255 = no pair)"),
        _a("points/label", "uint8", "point", "3D network prediction per point, refined: majority of views/label_3d over its pairs (raw where unseen)"),
        _a("points/label_raw", "uint8", "point", "3D network prediction per point, unrefined", required=False),
        _a("points/label_2d", "uint8", "point", "majority of the refined 2D prediction over the point's pairs (255 = unseen)"),
    ),
)

STAGES: dict[str, StageSpec] = {s.name: s for s in (PREPARE, CLIP, SAM, REFINE, POINTS, PREDICTIONS)}


def stage_spec(name: str) -> StageSpec:
    """The :class:`StageSpec` called ``name``."""
    try:
        return STAGES[name]
    except KeyError:
        raise StoreError(f"unknown stage {name!r}; known: {sorted(STAGES)}") from None


# --------------------------------------------------------------------------------------
# Chunking
# --------------------------------------------------------------------------------------


def chunking(spec: ArraySpec, shape: tuple[int, ...], itemsize: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Inner chunk and shard shape for an array: one chunk per view, else ~1 MiB row blocks.

    The shard covers the whole array, so each array is a single file.
    """
    shape1 = tuple(max(1, s) for s in shape)
    if spec.dims and spec.dims[0] == "view":
        chunk = (1, *shape1[1:])
    else:
        row_bytes = max(1, itemsize * int(np.prod(shape1[1:], dtype=np.int64)))
        rows = max(1, min(shape1[0], _CHUNK_BYTES // row_bytes)) if shape1 else 1
        chunk = (rows, *shape1[1:]) if shape1 else ()
    if not chunk:
        return (), ()
    shard = (math.ceil(shape1[0] / chunk[0]) * chunk[0], *shape1[1:])
    return chunk, shard


# --------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------


def code_version() -> str:
    """Package version plus the git commit of the checkout (``+dirty`` if modified), if any."""
    from pipeline import __version__

    repo = Path(__file__).resolve().parents[1]
    head = repo / ".git"
    if not head.exists():
        return __version__
    try:
        import subprocess

        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        return f"{__version__}+{out}" if out else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class StoreWriter:
    """Write one stage store atomically.

    >>> with StoreWriter(out, "prepare", attrs={"dataset": "demo"}) as w:  # doctest: +SKIP
    ...     w.add_sample("scene0000_00", {"views/pose": poses, ...}, attrs={"split": "train"})

    On success the store appears at ``path`` with root attributes ``stage``,
    ``layout_version``, ``samples``, ``created``, ``code_version``, ``complete: true`` and the
    caller's ``attrs``; on an exception nothing appears and the temporary is removed.
    """

    def __init__(self, path: str | Path, stage: str, attrs: Mapping[str, Any] | None = None) -> None:
        import zarr

        self.path = Path(path)
        self.stage = stage_spec(stage)
        self.attrs = dict(attrs or {})
        self.samples: list[str] = []
        self._store_level_written: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)
        self.tmp = partial_path(self.path)
        self.root = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        self._closed = False

    # -- arrays -------------------------------------------------------------------------
    def _write(self, group_path: str, spec: ArraySpec, data: np.ndarray) -> None:
        from zarr.codecs import ZstdCodec

        chunk, shard = chunking(spec, data.shape, data.dtype.itemsize)
        kwargs: dict[str, Any] = {"compressors": [ZstdCodec(level=3)] if spec.compress else None}
        if chunk:
            kwargs.update(chunks=chunk, shards=shard)
        arr = self.root.create_array(
            name=f"{group_path}/{spec.path}" if group_path else spec.path,
            shape=data.shape, dtype=data.dtype, fill_value=0, **kwargs,
        )
        if data.size:
            arr[...] = data

    def add_sample(self, sample_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> None:
        """Validate ``arrays`` against the stage spec and write them as group ``sample_id``."""
        if self._closed:
            raise StoreError(f"{self.path}: writer already closed")
        if not _SAMPLE_ID.match(sample_id) or sample_id.startswith("_"):
            raise StoreError(f"{self.path}: invalid sample id {sample_id!r}")
        if sample_id in self.samples:
            raise StoreError(f"{self.path}: sample {sample_id!r} written twice")
        where = f"{self.path} sample {sample_id}"
        declared = {s.path: s for s in self.stage.arrays}
        unknown = sorted(set(arrays) - set(declared))
        if unknown:
            raise StoreError(f"{where}: arrays {unknown} are not declared for stage {self.stage.name!r} (pipeline/layout.py)")
        missing = sorted(p for p, s in declared.items() if s.required and p not in arrays)
        if missing:
            raise StoreError(f"{where}: required arrays {missing} missing")
        sizes: dict[str, int] = {}
        checked = {}
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            declared[name].check(data, sizes, where)
            checked[name] = data
        group = self.root.create_group(sample_id)
        for name, data in checked.items():
            self._write(sample_id, declared[name], data)
        group.attrs.update(_jsonable({**(attrs or {}), "sizes": sizes}))
        self.samples.append(sample_id)

    def add_store_array(self, path: str, data: np.ndarray) -> None:
        """Write a store-level array (declared in the stage's ``store_arrays``)."""
        spec = self.stage.spec(path, store_level=True)
        data = np.ascontiguousarray(data)
        spec.check(data, {}, str(self.path))
        if path in self._store_level_written:
            raise StoreError(f"{self.path}: store array {path!r} written twice")
        self._write("", spec, data)
        self._store_level_written.add(path)

    # -- commit ---------------------------------------------------------------------------
    def commit(self) -> Path:
        """Finish the store and move it into place (replacing an older store at ``path``)."""
        if self._closed:
            raise StoreError(f"{self.path}: writer already closed")
        meta = {
            **_jsonable(self.attrs),
            "stage": self.stage.name,
            "layout_version": LAYOUT_VERSION,
            "samples": list(self.samples),
            "created": _now(),
            "code_version": code_version(),
            "complete": True,
        }
        self.root.attrs.update(meta)
        replace(self.tmp, self.path)
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Remove the temporary store; nothing appears at ``path``."""
        self._closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


class StoreReader:
    """Read a finished stage store; refuses incomplete stores and other layout versions."""

    def __init__(self, path: str | Path, stage: str | None = None) -> None:
        import zarr

        self.path = Path(path)
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: store not found")
        try:
            self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
        except Exception as err:  # zarr raises several types for unreadable metadata
            raise StoreError(f"{self.path}: not a readable Zarr v3 store ({err})") from err
        self.attrs: dict[str, Any] = dict(self.root.attrs)
        if not self.attrs.get("complete"):
            raise StoreError(f"{self.path}: store is incomplete (a writer did not finish); delete it and rerun")
        if self.attrs.get("layout_version") != LAYOUT_VERSION:
            raise StoreError(
                f"{self.path}: layout version {self.attrs.get('layout_version')} but this code reads {LAYOUT_VERSION}; rerun the stage"
            )
        if stage is not None and self.attrs.get("stage") != stage:
            raise StoreError(f"{self.path}: expected a {stage!r} store, found {self.attrs.get('stage')!r}")
        self.stage = stage_spec(self.attrs["stage"])
        self.samples: list[str] = list(self.attrs["samples"])

    def __iter__(self) -> Iterator[str]:
        return iter(self.samples)

    def require_samples(self, reference: "StoreReader", hint: str = "rerun that stage") -> None:
        """Raise :class:`StoreError` naming this store unless it holds every sample of ``reference``
        (stores of one shard from different stages must cover the same samples)."""
        have = set(self.samples)
        missing = [s for s in reference.samples if s not in have]
        if missing:
            raise StoreError(f"{self.path}: lacks samples {missing[:5]} of {reference.path}; {hint}")

    def _check_sample(self, sample_id: str) -> None:
        if sample_id not in self.samples:
            raise StoreError(f"{self.path}: no sample {sample_id!r}")

    def sample_attrs(self, sample_id: str) -> dict[str, Any]:
        """Attributes of a sample group (including ``sizes``: the named dimension sizes)."""
        self._check_sample(sample_id)
        return dict(self.root[sample_id].attrs)

    def has(self, sample_id: str, name: str) -> bool:
        """True if the sample holds array ``name``."""
        self._check_sample(sample_id)
        try:
            self.root[f"{sample_id}/{name}"]
        except KeyError:
            return False
        return True

    def array(self, sample_id: str, name: str):
        """The lazy ``zarr.Array`` ``name`` of a sample (index it to read)."""
        self._check_sample(sample_id)
        self.stage.spec(name)
        try:
            return self.root[f"{sample_id}/{name}"]
        except KeyError:
            raise StoreError(f"{self.path}: sample {sample_id!r} has no array {name!r}") from None

    def read(self, sample_id: str, name: str, index: Any = Ellipsis) -> np.ndarray:
        """Read ``name`` (or ``[index]`` of it) of a sample as a numpy array."""
        return np.asarray(self.array(sample_id, name)[index])

    def read_store_array(self, name: str) -> np.ndarray:
        """Read a store-level array (``_store/...``)."""
        self.stage.spec(name, store_level=True)
        try:
            return np.asarray(self.root[name][...])
        except KeyError:
            raise StoreError(f"{self.path}: no store-level array {name!r}") from None

    def has_store_array(self, name: str) -> bool:
        try:
            self.root[name]
        except KeyError:
            return False
        return True


def read_csr(offsets: np.ndarray, values: np.ndarray, i: int) -> np.ndarray:
    """Row ``i`` of a CSR pair (``offsets`` (n+1,), ``values``)."""
    return values[int(offsets[i]) : int(offsets[i + 1])]


def csr_offsets(lengths: Sequence[int]) -> np.ndarray:
    """Offsets (n+1,) int64 for rows of the given lengths."""
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=out[1:])
    return out

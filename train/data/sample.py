"""One sample's data as the trainer needs it, read from the stores (numpy), with an LRU cache.

Label *origins* are where a label comes from: ``pseudo`` (the pipeline's refined pixel labels
and voted point labels), ``pred2d`` and ``pred3d`` (the frozen stage-1 networks' SAM-refined
predictions, stage 2). Each origin has a 2D realisation (a map per view) and a 3D one (an array
per point); see :mod:`train.losses.switching` for how targets are drawn from them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline.camera import sam_valid_grid
from pipeline.images import read_view_images, resize_image
from pipeline.stores import StoreError
from pipeline.stores.sam_codecs import SamFeatureReader
from pipeline.vocab import IGNORE
from pipeline.pairs import expand_view_offsets
from train.data.pairs import group_by_point, label_pixels_to_cells
from train.data.stores import ShardStores

ORIGINS: tuple[str, ...] = ("pseudo", "pred2d", "pred3d")
"""Label origins, in the order batches stack them."""

MAP_ARRAYS: dict[str, tuple[str, str]] = {
    "pseudo": ("refined", "views/label"),
    "pred2d": ("predictions", "views/label"),
    "pred3d": ("predictions", "views/label_3d"),
}
"""Origin → (store role, array) of its 2D realisation (V, Hl, Wl) uint8 (``pseudo``: refined labels)."""

POINT_ARRAYS: dict[str, tuple[str, str]] = {
    "pseudo": ("points", "points/label"),
    "pred2d": ("predictions", "points/label_2d"),
    "pred3d": ("predictions", "points/label"),
}
"""Origin → (store role, array) of its 3D realisation (P,) uint8 (``pseudo``: refined labels)."""

PSEUDO_LABELS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "refined": (MAP_ARRAYS["pseudo"], POINT_ARRAYS["pseudo"]),
    "clip": (("clip", "views/label"), ("points", "points/label_clip")),
}
"""``train.data.pseudo_labels`` → ((role, array) of the ``pseudo`` maps, (role, array) of its point
labels): the SAM-refined labels (the method) or the raw CLIP ones (no refinement, an ablation row)."""


def origin_arrays(pseudo_labels: str = "refined") -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """(origin → 2D (role, array), origin → 3D (role, array)) with the ``pseudo`` origin read from
    ``pseudo_labels`` (a key of :data:`PSEUDO_LABELS`)."""
    if pseudo_labels not in PSEUDO_LABELS:
        raise ValueError(f"train.data.pseudo_labels: unknown {pseudo_labels!r}; choose one of {sorted(PSEUDO_LABELS)}")
    maps, points = PSEUDO_LABELS[pseudo_labels]
    return {**MAP_ARRAYS, "pseudo": maps}, {**POINT_ARRAYS, "pseudo": points}


def check_labels(labels: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    """Raise if ``labels`` hold values that are neither a class index nor IGNORE (another vocabulary)."""
    bad = (labels != IGNORE) & (labels >= n_classes)
    if bad.any():
        raise StoreError(
            f"{where}: label value {int(labels[bad].max())} is not a class of the configured {n_classes}-class "
            "vocabulary (nor 255); the store was made for another vocabulary"
        )
    return labels


@dataclass
class SampleData:
    """Per-sample arrays (everything but the per-view images, maps and features).

    Sizes: P points, K pairs, V views; ``label_size`` (Wl, Hl); ``image_size`` (W, H) working;
    ``sam_grid`` (Hc, Wc) valid SAM cells.
    """

    index: int
    sample_id: str
    shard: str
    xyz: np.ndarray  # (P, 3) float32
    rgb: np.ndarray  # (P, 3) uint8
    intensity: np.ndarray | None  # (P,) float32 lidar intensity, None without
    n_views: int
    image_size: tuple[int, int]
    label_size: tuple[int, int]
    sam_grid: tuple[int, int]
    pair_view: np.ndarray  # (K,) int32
    pair_pixel: np.ndarray  # (K,) int64
    pair_point: np.ndarray  # (K,) int64
    pair_order: np.ndarray  # (K,) int64 pairs sorted by point
    point_pair_offsets: np.ndarray  # (P+1,) int64
    view_pair_offsets: np.ndarray  # (V+1,) int64
    point_labels: dict[str, np.ndarray]  # origin -> (P,) uint8
    pair_labels: dict[str, np.ndarray]  # origin -> (K,) uint8 (2D realisation at each pair's pixel)
    cell_of_pixel: np.ndarray  # (Hl*Wl,) int64

    @property
    def n_points(self) -> int:
        """P, the sample's number of points."""
        return int(self.xyz.shape[0])

    def view_pairs(self, view: int) -> slice:
        """The slice of the pair arrays that holds view ``view``'s pairs (pairs are CSR by view)."""
        return slice(int(self.view_pair_offsets[view]), int(self.view_pair_offsets[view + 1]))


class SampleSource:
    """Random access to samples across shards: ``index`` → (shard, sample id), cached reads.

    ``origins`` are the label origins to load; ``feature_space`` the latent space
    (``sam`` / ``reduced``), ``None`` to skip features; ``pseudo_labels`` where the ``pseudo``
    origin reads (:data:`PSEUDO_LABELS`).
    """

    def __init__(
        self,
        shards: Sequence[ShardStores],
        n_classes: int,
        origins: Sequence[str],
        feature_space: str | None,
        cache_size: int,
        pseudo_labels: str = "refined",
    ) -> None:
        self.shards = list(shards)
        self.map_arrays, self.point_arrays = origin_arrays(pseudo_labels)
        self.n_classes = n_classes
        self.origins = tuple(o for o in ORIGINS if o in origins)
        self.feature_space = feature_space
        self.cache_size = cache_size
        self.index: list[tuple[int, str]] = [(i, s) for i, shard in enumerate(self.shards) for s in shard.samples]
        self._cache: OrderedDict[int, SampleData] = OrderedDict()
        self._features: dict[int, SamFeatureReader] = {}

    def __len__(self) -> int:
        return len(self.index)

    def features(self, shard_index: int) -> SamFeatureReader:
        """The (cached) SAM feature reader of shard ``shard_index`` in the configured space."""
        if shard_index not in self._features:
            self._features[shard_index] = SamFeatureReader(self.shards[shard_index].reader("sam"), self.feature_space or "sam")
        return self._features[shard_index]

    def feature_dim(self) -> int:
        """Channels of the decoded SAM features (of the first sample)."""
        return self.features(self.index[0][0]).dim()

    # -- per sample ------------------------------------------------------------------------
    def sample(self, index: int) -> SampleData:
        """The cached :class:`SampleData` of sample ``index``."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        data = self._load(index)
        self._cache[index] = data
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return data

    def _load(self, index: int) -> SampleData:
        shard_i, sid = self.index[index]
        shard = self.shards[shard_i]
        prep = shard.prepared
        if shard.get("points") is None:
            return self._load_image_only(index, shard, sid)
        xyz = prep.read(sid, "points/xyz").astype(np.float32)
        n_points = xyz.shape[0]
        rgb = prep.read(sid, "points/rgb") if prep.has(sid, "points/rgb") else np.full((n_points, 3), 128, np.uint8)
        intensity = prep.read(sid, "points/intensity") if prep.has(sid, "points/intensity") else None
        image_sizes = prep.read(sid, "views/image_size")
        n_views = int(image_sizes.shape[0])
        image_size = (int(image_sizes[0][0]), int(image_sizes[0][1])) if n_views else (0, 0)
        sizes = shard.reader("refined").sample_attrs(sid)["sizes"]
        label_size = (int(sizes["Wl"]), int(sizes["Hl"]))
        sam_grid = sam_valid_grid(image_size) if n_views else (0, 0)
        pts = shard.reader("points")
        view_offsets = pts.read(sid, "views/pair_offsets").astype(np.int64)
        pair_point = pts.read(sid, "pairs/point").astype(np.int64)
        pair_pixel = pts.read(sid, "pairs/pixel").astype(np.int64)
        pair_view = expand_view_offsets(view_offsets)
        if pair_point.size and (pair_point.min() < 0 or pair_point.max() >= n_points):
            raise StoreError(f"{pts.path}: sample {sid!r} has pairs pointing outside its {n_points} points")
        if pair_pixel.size and (pair_pixel.min() < 0 or pair_pixel.max() >= label_size[0] * label_size[1]):
            raise StoreError(f"{pts.path}: sample {sid!r} has pair pixels outside the {label_size} label grid")
        order, offsets = group_by_point(pair_point, n_points)
        point_labels, pair_labels = {}, {}
        for origin in self.origins:
            role, name = self.point_arrays[origin]
            reader = shard.reader(role)
            point_labels[origin] = check_labels(reader.read(sid, name), self.n_classes, f"{reader.path} {sid}/{name}")
            role, name = self.map_arrays[origin]
            reader = shard.reader(role)
            maps = check_labels(reader.read(sid, name), self.n_classes, f"{reader.path} {sid}/{name}")
            flat = maps.reshape(n_views, -1)
            pair_labels[origin] = flat[pair_view, pair_pixel] if pair_point.size else np.zeros(0, np.uint8)
        return SampleData(
            index=index,
            sample_id=sid,
            shard=shard.name,
            xyz=xyz,
            rgb=rgb,
            intensity=intensity,
            n_views=n_views,
            image_size=image_size,
            label_size=label_size,
            sam_grid=sam_grid,
            pair_view=pair_view,
            pair_pixel=pair_pixel,
            pair_point=pair_point,
            pair_order=order,
            point_pair_offsets=offsets,
            view_pair_offsets=view_offsets,
            point_labels=point_labels,
            pair_labels=pair_labels,
            cell_of_pixel=label_pixels_to_cells(label_size, image_size) if n_views else np.zeros(0, np.int64),
        )

    def _load_image_only(self, index: int, shard: ShardStores, sid: str) -> SampleData:
        """A sample without points (nuImages): its views only; no points, no pairs (P = K = 0)."""
        image_sizes = shard.prepared.read(sid, "views/image_size")
        n_views = int(image_sizes.shape[0])
        image_size = (int(image_sizes[0][0]), int(image_sizes[0][1])) if n_views else (0, 0)
        sizes = shard.reader("refined").sample_attrs(sid)["sizes"]
        label_size = (int(sizes["Wl"]), int(sizes["Hl"]))
        for origin in self.origins:
            role, name = self.map_arrays[origin]
            reader = shard.reader(role)
            check_labels(reader.read(sid, name), self.n_classes, f"{reader.path} {sid}/{name}")
        none = np.zeros(0, np.int64)
        return SampleData(
            index=index, sample_id=sid, shard=shard.name, xyz=np.zeros((0, 3), np.float32), rgb=np.zeros((0, 3), np.uint8),
            intensity=None, n_views=n_views, image_size=image_size, label_size=label_size,
            sam_grid=sam_valid_grid(image_size) if n_views else (0, 0), pair_view=np.zeros(0, np.int32), pair_pixel=none,
            pair_point=none, pair_order=none, point_pair_offsets=np.zeros(1, np.int64),
            view_pair_offsets=np.zeros(n_views + 1, np.int64),
            point_labels={o: np.zeros(0, np.uint8) for o in self.origins}, pair_labels={o: np.zeros(0, np.uint8) for o in self.origins},
            cell_of_pixel=label_pixels_to_cells(label_size, image_size) if n_views else np.zeros(0, np.int64),
        )

    # -- per view ---------------------------------------------------------------------------
    def view_image(self, index: int, view: int) -> np.ndarray:
        """Colour image of a view at label resolution → (Hl, Wl, 3) uint8."""
        shard_i, sid = self.index[index]
        data = self.sample(index)
        image = read_view_images(self.shards[shard_i].prepared, sid, [view])[0]
        return resize_image(image, data.label_size)

    def view_maps(self, index: int, view: int) -> dict[str, np.ndarray]:
        """2D realisation of each loaded origin for one view → origin: (Hl, Wl) uint8."""
        shard_i, sid = self.index[index]
        out = {}
        for origin in self.origins:
            role, name = self.map_arrays[origin]
            reader = self.shards[shard_i].reader(role)
            out[origin] = reader.read(sid, name, view)
        return out

    def view_segments(self, index: int, view: int) -> np.ndarray:
        """SAM segment ids of a view → (Hl, Wl) int32 (-1 = none)."""
        shard_i, sid = self.index[index]
        return self.shards[shard_i].reader("sam").read(sid, "views/segments", view)

    def view_features(self, index: int, view: int) -> np.ndarray:
        """Decoded SAM features of a view → (Hc, Wc, D) float32."""
        shard_i, sid = self.index[index]
        return self.features(shard_i).view(sid, view)

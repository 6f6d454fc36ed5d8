"""The trainer's configuration: typed views of the validated ``train`` section.

The schema (``pipeline/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) is the
only owner of keys, defaults and descriptions. The dataclasses here take values only (no
defaults): :func:`train_config` builds them from a validated config, whose every key the schema
has filled, and refuses a section whose keys differ from a dataclass's fields (a test checks the
same statically, so a key added to one and not the other fails). Commands receive the config as
JSON from the Snakemake rules (``--options``) or read YAML files (``--config``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Sequence

from pipeline.errors import UserError

SOURCES: tuple[str, ...] = ("pseudo", "self", "cross")
"""Label sources from a network's point of view (see :mod:`train.losses.switching`)."""

READ_ELSEWHERE: dict[str, str] = {
    "predict": "train/predict.py reads train.predict from the validated config",
    "splits": "the workflow picks the stores of the training splits (workflow/rules/common.smk train_splits)",
}
"""Keys of the ``train`` section that :class:`TrainConfig` does not hold, and who reads them."""

FROM_OTHER_SECTIONS: dict[str, str] = {"benchmark": "vocabulary.benchmark"}
"""Fields of :class:`TrainConfig` that come from other sections (field → dotted key)."""

STAGE1_FIXED: dict[str, Any] = {"enabled": True, "predictions": "frozen", "lr_scale": 1.0}
"""What stage 1 is by definition (it has no such keys): it always runs, reads no predictions
(``predictions`` only matters with self/cross sources) and uses the peak learning rates."""


@dataclass(frozen=True)
class Net2DConfig:
    """``train.net2d``: DeepLabV3's backbone, optional local backbone weights, projection-head width."""

    backbone: str
    backbone_weights: str | None
    head_hidden: int


@dataclass(frozen=True)
class Net3DConfig:
    """``train.net3d``: MinkUNet34 size and backend, voxel edge (metres), input channels, head width."""

    size: str
    backend: str
    voxel_size: float
    input_features: tuple[str, ...]
    head_hidden: int

    @property
    def in_channels(self) -> int:
        """Input channels per point: rgb 3, xyz 3, ones 1, intensity 1."""
        return sum({"rgb": 3, "xyz": 3, "ones": 1, "intensity": 1}[f] for f in self.input_features)


@dataclass(frozen=True)
class DataConfig:
    """``train.data``: batches (samples x views), crops (W, H) at label resolution, augmentations."""

    pseudo_labels: str  # refined | clip: where the "pseudo" origin's labels come from (train.data.sample)
    batch_size: int
    views_per_sample: int
    crop_size: tuple[int, int]
    max_voxels_per_batch: int
    grid_sample: bool
    rotate: bool
    flip: bool
    scale: tuple[float, float]
    jitter: float
    latent_pixels_per_view: int
    workers: int
    cache_samples: int

    @property
    def max_voxels_per_sample(self) -> int:
        """The voxel budget of one sample: ``max_voxels_per_batch // batch_size`` (at least 1)."""
        return max(1, self.max_voxels_per_batch // self.batch_size)


@dataclass(frozen=True)
class LossConfig:
    """``train.loss``: loss weights, the latent space (``sam`` / ``reduced``) and the class balance of
    the cross-entropies (``none`` / ``inverse_sqrt``, :mod:`train.data.class_balance`)."""

    ce2d: float
    ce3d: float
    latent2d: float
    latent3d: float
    latent_space: str
    class_balance: str


@dataclass(frozen=True)
class OptimConfig:
    """``train.optim``: optimiser, peak learning rates, schedule, warm-up, gradient clipping."""

    optimizer: str
    lr2d: float
    lr3d: float
    momentum: float
    weight_decay: float
    schedule: str
    warmup_steps: int
    grad_clip: float


@dataclass(frozen=True)
class StageConfig:
    """One training stage (``train.stage1`` / ``train.stage2`` resolved): its length, label
    sources, switching, loss weights (``train.loss`` with the stage's overrides), predictions
    mode, learning-rate scale and whether it runs."""

    name: str
    steps: int
    sources: dict[str, float]
    switching: bool
    loss: LossConfig
    predictions: str
    lr_scale: float
    enabled: bool

    @property
    def needs_predictions(self) -> bool:
        """True if self/cross sources are on (stage 2)."""
        return self.sources["self"] > 0 or self.sources["cross"] > 0


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section (but :data:`READ_ELSEWHERE`) plus :data:`FROM_OTHER_SECTIONS`.

    ``stage1`` / ``stage2`` are the validated stage sections; :meth:`stage` resolves one (lazily,
    so a stage that is not run is not checked).
    """

    benchmark: str
    seed: int
    device: str
    amp: bool
    threads: int
    transductive: bool
    net2d: Net2DConfig
    net3d: Net3DConfig
    data: DataConfig
    loss: LossConfig
    optim: OptimConfig
    checkpoint_every: int
    keep_checkpoints: int
    log_every: int
    stage1: Mapping[str, Any]
    stage2: Mapping[str, Any]

    def stage(self, name: str) -> StageConfig:
        """The :class:`StageConfig` of ``stage1`` or ``stage2``."""
        if name not in ("stage1", "stage2"):
            raise UserError(f"unknown stage {name!r} (stage1 or stage2)")
        raw = dict(self.stage1 if name == "stage1" else self.stage2)
        overrides = dict(raw.pop("loss"))
        known = [f.name for f in fields(LossConfig)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise UserError(f"config key train.{name}.loss: unknown keys {unknown}; known: {sorted(known)}")
        given = raw.pop("sources")
        sources = {s: float(given[s]) for s in SOURCES}
        if sum(sources.values()) <= 0:
            raise UserError(f"config key train.{name}.sources: every source weight is 0")
        values = {**(STAGE1_FIXED if name == "stage1" else {}), **raw}
        return _build(StageConfig, values, f"train.{name}", name=name, sources=sources, loss=replace(self.loss, **overrides))


def _build(cls: type, section: Mapping[str, Any], where: str, skip: Sequence[str] = (), **values: Any) -> Any:
    """``cls`` from a validated config section: every field from ``values`` or else ``section``.

    Raises :class:`UserError` when the section's keys (but ``skip``) and the fields differ: the
    schema and this module disagree.
    """
    names = [f.name for f in fields(cls)]
    given = {k: v for k, v in section.items() if k not in skip}
    given.update(values)
    missing, extra = sorted(set(names) - set(given)), sorted(set(given) - set(names))
    if missing or extra:
        raise UserError(f"config section {where}: keys {extra} are not fields of {cls.__name__}, fields {missing} have no key "
                        "(is the config validated? do the schema and train/config.py agree?)")
    return cls(**{name: given[name] for name in names})


def train_config(config: Mapping[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a validated config (its ``train`` and ``vocabulary`` sections)."""
    section = config["train"]
    data = section["data"]
    if data["batch_size"] * data["views_per_sample"] < 2:
        # DeepLabV3's image-pooling branch batch-normalises one value per channel per image:
        # with a single image per step, batch norm in training mode has nothing to normalise.
        raise UserError("config keys train.data.batch_size x train.data.views_per_sample: DeepLabV3 trains on at "
                        "least 2 images per step (its image-pooling batch norm); raise either to make it >= 2")
    net3d = section["net3d"]
    return _build(
        TrainConfig, section, "train", skip=tuple(READ_ELSEWHERE),
        benchmark=config["vocabulary"]["benchmark"],
        net2d=_build(Net2DConfig, section["net2d"], "train.net2d"),
        net3d=_build(Net3DConfig, net3d, "train.net3d", input_features=tuple(net3d["input_features"])),
        data=_build(DataConfig, data, "train.data", crop_size=tuple(data["crop_size"]), scale=tuple(data["scale"])),
        loss=_build(LossConfig, section["loss"], "train.loss"),
        optim=_build(OptimConfig, section["optim"], "train.optim"),
        stage1=dict(section["stage1"]),
        stage2=dict(section["stage2"]),
    )


def load_options(config_path: str | Sequence[str] | None, options_json: str | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated full config from YAML file(s) merged in order and/or a JSON object of sections (JSON wins)."""
    from pipeline.config import deep_merge, load_config, parse_options

    extra = parse_options(options_json) if options_json else {}
    if overrides:
        extra = deep_merge(extra, overrides)
    return load_config(config_path, extra)

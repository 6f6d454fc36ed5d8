"""The trainer's configuration: typed views of the validated ``train`` / ``evaluate`` sections.

The schema (``workflow/schemas/config.schema.yaml``) owns keys, defaults and descriptions;
this module only turns the validated dicts into frozen dataclasses that build objects
(networks, losses, loaders), detectron2-style. Commands receive the sections as JSON from
the Snakemake rules (``--options``) or read a YAML file by hand (``--config``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from pipeline.errors import UserError

SOURCES: tuple[str, ...] = ("pseudo", "self", "cross")
"""Label sources from a network's point of view (see :mod:`train.losses.switching`)."""


@dataclass(frozen=True)
class Net2DConfig:
    backbone: str = "resnet50"
    backbone_weights: str | None = None
    head_hidden: int = 0


@dataclass(frozen=True)
class Net3DConfig:
    size: str = "full"
    backend: str = "torch"
    voxel_size: float = 0.05
    input_features: tuple[str, ...] = ("rgb",)
    head_hidden: int = 0

    @property
    def in_channels(self) -> int:
        return sum({"rgb": 3, "xyz": 3, "ones": 1}[f] for f in self.input_features)


@dataclass(frozen=True)
class DataConfig:
    batch_size: int = 4
    views_per_sample: int = 2
    crop_size: tuple[int, int] = (512, 384)
    max_voxels_per_batch: int = 300000
    grid_sample: bool = True
    rotate: bool = True
    flip: bool = True
    scale: tuple[float, float] = (0.9, 1.1)
    jitter: float = 0.005
    latent_pixels_per_view: int = 4096
    workers: int = 2
    cache_samples: int = 8

    @property
    def max_voxels_per_sample(self) -> int:
        return max(1, self.max_voxels_per_batch // self.batch_size)


@dataclass(frozen=True)
class LossConfig:
    ce2d: float = 1.0
    ce3d: float = 1.0
    latent2d: float = 1.0
    latent3d: float = 1.0
    latent_space: str = "sam"


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"
    lr2d: float = 0.01
    lr3d: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "poly"
    warmup_steps: int = 0
    grad_clip: float = 10.0


@dataclass(frozen=True)
class StageConfig:
    """One training stage: its length, label sources, switching and loss weights."""

    name: str
    steps: int
    sources: dict[str, float]
    switching: bool
    loss: LossConfig
    predictions: str = "frozen"
    lr_scale: float = 1.0
    enabled: bool = True

    @property
    def needs_predictions(self) -> bool:
        """True if self/cross sources are on (stage 2)."""
        return self.sources.get("self", 0.0) > 0 or self.sources.get("cross", 0.0) > 0


@dataclass(frozen=True)
class TrainConfig:
    """The whole ``train`` section plus the vocabulary it trains for."""

    benchmark: str
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    threads: int = 0
    transductive: bool = False
    net2d: Net2DConfig = field(default_factory=Net2DConfig)
    net3d: Net3DConfig = field(default_factory=Net3DConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    stage1_raw: dict = field(default_factory=dict)
    stage2_raw: dict = field(default_factory=dict)
    predict_refine: bool = True

    def stage(self, name: str) -> StageConfig:
        """The :class:`StageConfig` of ``stage1`` or ``stage2``."""
        if name not in ("stage1", "stage2"):
            raise UserError(f"unknown stage {name!r} (stage1 or stage2)")
        raw = self.stage1_raw if name == "stage1" else self.stage2_raw
        overrides = dict(raw.get("loss") or {})
        unknown = sorted(set(overrides) - set(LossConfig.__dataclass_fields__))
        if unknown:
            raise UserError(f"config key train.{name}.loss: unknown keys {unknown}; known: {sorted(LossConfig.__dataclass_fields__)}")
        loss = LossConfig(**{**asdict(self.loss), **overrides})
        sources = {s: float((raw.get("sources") or {}).get(s, 0.0)) for s in SOURCES}
        if sum(sources.values()) <= 0:
            raise UserError(f"config key train.{name}.sources: every source weight is 0")
        return StageConfig(
            name=name,
            steps=int(raw.get("steps", 1)),
            sources=sources,
            switching=bool(raw.get("switching", True)),
            loss=loss,
            predictions=str(raw.get("predictions", "frozen")),
            lr_scale=float(raw.get("lr_scale", 1.0)),
            enabled=bool(raw.get("enabled", True)),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_config(config: Mapping[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from a validated config (needs ``train`` and ``vocabulary``)."""
    section = dict(config["train"])
    data = dict(section["data"])
    if data["batch_size"] * data["views_per_sample"] < 2:
        # DeepLabV3's image-pooling branch batch-normalises one value per channel per image:
        # with a single image per step, batch norm in training mode has nothing to normalise.
        raise UserError("config keys train.data.batch_size x train.data.views_per_sample: DeepLabV3 trains on at "
                        "least 2 images per step (its image-pooling batch norm); raise either to make it >= 2")
    data["crop_size"] = tuple(data["crop_size"])
    data["scale"] = tuple(data["scale"])
    net3d = dict(section["net3d"])
    net3d["input_features"] = tuple(net3d["input_features"])
    return TrainConfig(
        benchmark=config["vocabulary"]["benchmark"],
        seed=section["seed"],
        device=section["device"],
        amp=section["amp"],
        threads=section["threads"],
        transductive=section["transductive"],
        net2d=Net2DConfig(**section["net2d"]),
        net3d=Net3DConfig(**net3d),
        data=DataConfig(**data),
        loss=LossConfig(**section["loss"]),
        optim=OptimConfig(**section["optim"]),
        checkpoint_every=section["checkpoint_every"],
        keep_checkpoints=section["keep_checkpoints"],
        log_every=section["log_every"],
        stage1_raw=dict(section["stage1"]),
        stage2_raw=dict(section["stage2"]),
        predict_refine=section["predict"]["refine"],
    )


def load_options(config_path: str | Sequence[str] | None, options_json: str | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The validated full config from YAML file(s) merged in order and/or a JSON object of sections (JSON wins)."""
    from pipeline.config import deep_merge, load_config, parse_options

    extra = parse_options(options_json) if options_json else {}
    if overrides:
        extra = deep_merge(extra, overrides)
    return load_config(config_path, extra)

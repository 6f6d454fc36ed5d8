"""The training of one CNS stage (single process or torchrun/DDP): build functions and a small loop.

:func:`run_stage` builds, in order, the data (:func:`build_data`: stores, sample source),
the networks (:func:`build_model`: initialisation, optional initial checkpoint), the optimiser
and schedule (:func:`build_optimiser`), resumes from the newest matching periodic checkpoint,
builds the loader (:func:`build_loader`) and runs :func:`train_loop`: forward (bf16 autocast on
CUDA), CNS loss, backward, per-network gradient clipping, optimiser step. Everything else a step
does is a hook of :mod:`train.engine.hooks` (schedule, divergence stop, logs and progress bar,
``on_step`` recording, checkpoints and ``stop_after``).

Run directory::

    <run>/final.pt                the final checkpoint (the Snakemake output)
    <run>/checkpoints/step_*.pt   periodic checkpoints (resume points)
    <run>/log.jsonl               one line per step: losses, lr, timings
    <run>/tensorboard/            TensorBoard event files
    <run>/run.json                config, stores, world size, transductive flag
    <run>/previous/run-<k>/       the above of earlier runs, moved aside by a fresh start
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from pipeline.atomic import atomic_write_text
from pipeline.config import config_hash
from pipeline.errors import UserError
from pipeline.provenance import code_version
from pipeline.stores import IMAGE_ONLY_KINDS, StoreError, required_trainer_stores
from pipeline.vocab import Benchmark, benchmark
from train.config import StageConfig, TrainConfig, train_config
from train.data.sample import SampleSource
from train.engine import checkpoint as ckpt
from train.engine.distributed import DistInfo, barrier, setup, teardown
from train.engine.hooks import (
    CheckpointHook, DivergenceHook, Hook, LogHook, LoopState, ScheduleHook, StepRecorder, TrainingDiverged, resume,
)
from train.engine.schedule import LRSchedule
from train.networks import CNSModel

log = logging.getLogger(__name__)

__all__ = ["RESUME_IRRELEVANT", "TrainingDiverged", "run_hash", "run_stage", "step_generator", "train_loop"]

RESUME_IRRELEVANT = ("checkpoint_every", "keep_checkpoints", "log_every", "threads")
"""Keys of ``train`` that may change between a run and its resumption."""


def inputs_id(stores: Mapping[str, Sequence[str]]) -> dict[str, list[str | None]]:
    """Store name → SHA-256 of each store's root metadata file (``zarr.json``: its producer's
    options, vocabulary and provenance), in the given order; None for a store without one."""
    from pipeline.provenance import file_sha256

    return {name: [file_sha256(Path(p) / "zarr.json") if (Path(p) / "zarr.json").is_file() else None for p in paths]
            for name, paths in sorted(stores.items())}


def run_hash(config: Mapping[str, Any], stage: str, init: str | Path | None = None,
             inputs: Mapping[str, Sequence[str | None]] | None = None) -> str:
    """Hash of what decides a run's trajectory (resume only continues a run with this hash):
    the ``train`` section without logging/worker keys and without the other stage's section,
    the content of the initial checkpoint and the input stores' identity (:func:`inputs_id`: a
    store recomputed with other settings, e.g. new CLIP labels, starts the run afresh instead of
    continuing on checkpoints trained on the old labels)."""
    other = {"stage1": ("stage2", "predict"), "stage2": ("stage1", "predict")}.get(stage, ())
    train = {k: v for k, v in config["train"].items() if k not in RESUME_IRRELEVANT and k not in other}
    train["data"] = {k: v for k, v in train["data"].items() if k not in ("workers", "cache_samples")}
    init_id = None
    if init is not None:
        from pipeline.provenance import file_sha256

        init_id = file_sha256(init)
    extra = {"ignore": config["refine"]["ignore"]} if stage == "stage2" else {}
    if inputs is not None:
        extra["inputs"] = {k: list(v) for k, v in inputs.items()}
    return config_hash({"train": train, "benchmark": config["vocabulary"]["benchmark"], "stage": stage, "init": init_id, **extra})


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator of a step's target and pixel draws (a function of seed, step, rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank + 17)


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_stage(
    config: Mapping[str, Any],
    stage_name: str,
    stores: Mapping[str, Sequence[str]],
    run_dir: str | Path,
    init: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
    resume_mode: str = "auto",
) -> Path:
    """Train one stage; returns the path of ``<run_dir>/final.pt``.

    ``config``: the validated config (``train``, ``vocabulary`` and ``refine.ignore`` used).
    ``stores``: store name → paths (see :func:`train.data.stores.open_shards`). ``init``:
    checkpoint whose networks start this stage (stage 2: stage 1's ``final.pt``). ``stop_after``:
    stop after this step's checkpoint as if killed (tests of resumption), returning its path.
    ``on_step(step, record)``: called on every rank after every step with its log record.
    ``resume_mode``: ``auto`` (resume this run's newest checkpoint, else start afresh), ``resume``
    (resume or stop with an error), ``fresh`` (start afresh); a fresh start moves the previous
    run's outputs to ``<run_dir>/previous/run-<k>/`` (:func:`train.engine.hooks.resume`).
    """
    cfg = train_config(config)
    stage = cfg.stage(stage_name)
    info = setup(cfg.device)
    try:
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if not stage.enabled:
            return _copy_init(init, Path(run_dir), stage, info)
        return _train(config, cfg, stage, stores, Path(run_dir), init, stop_after, progress, on_step, info, resume_mode)
    finally:
        teardown(info)


def _copy_init(init: str | Path | None, run_dir: Path, stage: StageConfig, info: DistInfo) -> Path:
    """A disabled stage: its ``final.pt`` is the initial checkpoint, relabelled."""
    if init is None:
        raise UserError(f"{stage.name} is disabled but no initial checkpoint was given")
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        state = ckpt.load_checkpoint(init)
        meta = {**ckpt.checkpoint_meta(state), "stage": stage.name, "copied_from": str(init)}
        state.update(stage=stage.name, meta=json.dumps(meta))
        state.pop("format", None)
        ckpt.save_checkpoint(run_dir / "final.pt", state)
    barrier(info)
    return run_dir / "final.pt"


@dataclass(frozen=True)
class DataSetup:
    """The stage's data: store paths given (``stores``), label ``origins`` loaded, the
    ``source``, whether SAM features are loaded (latent losses on) and predictions are online;
    ``image_only``: samples without points (no points stores, no 3D network)."""

    stores: dict[str, list[str]]
    origins: list[str]
    source: SampleSource
    with_features: bool
    online: bool
    image_only: bool = False


def check_image_only(stage: StageConfig, shards: Sequence) -> None:
    """Without points stores every prepared store must be of an image-only kind, and the stage may
    use 2D sources only (``pseudo``, ``self``) with frozen predictions; else one-line errors."""
    for shard in shards:
        kind = shard.prepared.attrs.get("kind")
        if kind not in IMAGE_ONLY_KINDS:
            raise StoreError(f"{shard.prepared.path}: no points stores given, but this {kind} store has points; pass --points")
    if stage.sources.get("cross", 0) > 0:
        raise UserError(f"train.{stage.name}.sources.cross: image-only data has no 3D network to cross-train from; set it to 0")
    if stage.predictions == "online" and stage.needs_predictions:
        raise UserError(f"train.{stage.name}.predictions: online predictions need the 3D branch; use frozen for image-only data")


def build_data(config: Mapping[str, Any], cfg: TrainConfig, stage: StageConfig, stores: Mapping[str, Sequence[str]], bench: Benchmark) -> DataSetup:
    """Open and check the stores the stage needs (the registry's list) and the sample source.
    No ``points`` stores given: image-only samples (:func:`check_image_only`)."""
    from train.data.stores import open_shards

    given = {r: list(p) for r, p in stores.items() if p}
    image_only = "points" not in given
    required = required_trainer_stores(stage.name, config["train"], image_only=image_only)
    shards = open_shards(given, bench, required)
    if image_only:
        check_image_only(stage, shards)
    origins = ["pseudo", "pred2d", "pred3d"] if "predictions" in required else ["pseudo"]
    if image_only:
        origins = [o for o in origins if o != "pred3d"]
    with_features = stage.loss.latent2d > 0 or (stage.loss.latent3d > 0 and not image_only)
    source = SampleSource(shards, bench.n_classes, origins, cfg.loss.latent_space if with_features else None, cfg.data.cache_samples,
                          cfg.data.pseudo_labels)
    online = stage.predictions == "online" and stage.needs_predictions
    return DataSetup(given, origins, source, with_features, online, image_only)


def build_model(cfg: TrainConfig, data: DataSetup, n_classes: int, init: str | Path | None, device: torch.device) -> tuple[CNSModel, int]:
    """Both networks (seeded with ``train.seed``), from ``init``'s weights when given, on
    ``device``; returns ``(model, latent width)`` (the initial checkpoint's, else the features')."""
    from train.networks import build_2d, build_3d

    init_state = ckpt.load_checkpoint(init) if init else None
    latent_dim = ckpt.checkpoint_meta(init_state)["latent_dim"] if init_state else data.source.feature_dim()
    if data.with_features and data.source.feature_dim() != latent_dim:
        raise UserError(f"{init}: its projection heads are {latent_dim}-d but the SAM features are "
                        f"{data.source.feature_dim()}-d (train.loss.latent_space)")
    torch.manual_seed(cfg.seed)
    net2d = build_2d(cfg.net2d, n_classes, latent_dim)
    net3d = None if data.image_only else build_3d(cfg.net3d, n_classes, latent_dim)  # image-only: no 3D branch at all
    if init_state is not None:
        net2d.load_state_dict(init_state["model2d"])
        if net3d is not None:
            if "model3d" not in init_state:
                raise UserError(f"{init}: an image-only (2D) checkpoint cannot start a run with points")
            net3d.load_state_dict(init_state["model3d"])
    return CNSModel(net2d, net3d, cfg.net3d.voxel_size).to(device), latent_dim


def build_optimiser(cfg: TrainConfig, stage: StageConfig, model: CNSModel) -> tuple[torch.optim.Optimizer, LRSchedule]:
    """One optimiser with a parameter group per network (peak lr x ``stage.lr_scale``) and its schedule."""
    o = cfg.optim
    groups = [{"params": list(model.net2d.parameters()), "lr": o.lr2d * stage.lr_scale}]
    if model.net3d is not None:  # image-only runs have one group
        groups.append({"params": list(model.net3d.parameters()), "lr": o.lr3d * stage.lr_scale})
    if o.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=o.lr2d, momentum=o.momentum, weight_decay=o.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr2d, betas=(o.momentum, 0.999), weight_decay=o.weight_decay)
    return opt, LRSchedule(opt, stage.steps, o.schedule, o.warmup_steps)


def build_loader(cfg: TrainConfig, data: DataSetup, stage: StageConfig, start: int, info: DistInfo) -> torch.utils.data.DataLoader:
    """The loader of this rank's batches for steps ``start..stage.steps-1`` (one batch per step)."""
    from train.data.batch import collate
    from train.data.dataset import ItemBuilder, ItemDataset, StepSampler

    builder = ItemBuilder(data.source, cfg.data, cfg.net3d, cfg.seed, with_features=data.with_features, with_online=data.online)
    sampler = StepSampler(len(data.source), cfg.data.batch_size, cfg.seed, start, stage.steps, info.rank, info.world)
    return torch.utils.data.DataLoader(
        ItemDataset(builder),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.data.workers,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False,
        prefetch_factor=2 if cfg.data.workers > 0 else None,
    )


def _wrap_ddp(model: CNSModel, stage: StageConfig, info: DistInfo) -> torch.nn.Module:
    if info.world == 1:
        return model
    w = stage.loss
    unused = min(w.ce2d, w.ce3d, w.latent2d, w.latent3d) <= 0  # a head without a loss gets no gradient
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[info.device.index] if info.device.type == "cuda" else None, find_unused_parameters=unused
    )


def _meta(config: Mapping[str, Any], cfg: TrainConfig, stage: StageConfig, bench: Benchmark, latent_dim: int,
          hash_: str, init: str | Path | None, info: DistInfo, n_samples: int, image_only: bool = False) -> dict[str, Any]:
    """What every checkpoint of the run records (JSON)."""
    return {
        "stage": stage.name, "benchmark": bench.name, "classes": list(bench.class_names), "latent_dim": latent_dim,
        "latent_space": cfg.loss.latent_space, "net2d": asdict(cfg.net2d), "net3d": asdict(cfg.net3d), "run_hash": hash_,
        "config": config["train"], "code_version": code_version(), "transductive": cfg.transductive,
        "init": str(init) if init else None, "world_size": info.world, "samples": n_samples,
        "image_only": image_only,
    }


def balance_weights(stage: StageConfig, data: DataSetup, n_classes: int, device: torch.device) -> dict[str, torch.Tensor | None]:
    """Per-class cross-entropy weights ``{"2d": (K,), "3d": (K,)}`` on ``device`` for
    ``stage.loss.class_balance`` (empty for ``none``), counted on the run's training pseudo-labels."""
    from train.data.class_balance import class_weights, pseudo_label_counts

    if stage.loss.class_balance == "none":
        return {}
    pixels, points = pseudo_label_counts(data.source, n_classes)
    out = {"2d": class_weights(pixels, stage.loss.class_balance), "3d": class_weights(points, stage.loss.class_balance)}
    return {k: (v.to(device) if v is not None else None) for k, v in out.items()}


def _train(config: Mapping[str, Any], cfg: TrainConfig, stage: StageConfig, stores: Mapping[str, Sequence[str]], run_dir: Path,
           init: str | Path | None, stop_after: int | None, progress: bool, on_step: Callable[[int, dict], None] | None,
           info: DistInfo, resume_mode: str = "auto") -> Path:
    from train.losses.cns import CNSLoss

    bench = benchmark(cfg.benchmark)
    data = build_data(config, cfg, stage, stores, bench)
    hash_ = run_hash(config, stage.name, init, inputs_id(data.stores))
    model, latent_dim = build_model(cfg, data, bench.n_classes, init, info.device)
    opt, schedule = build_optimiser(cfg, stage, model)
    meta = _meta(config, cfg, stage, bench, latent_dim, hash_, init, info, len(data.source), data.image_only)
    weights = balance_weights(stage, data, bench.n_classes, info.device)
    if weights:
        meta["class_weights"] = {k: [round(float(x), 4) for x in v] for k, v in weights.items() if v is not None}
        if info.main:
            log.info("class-balanced cross-entropy (%s), weights from the training pseudo-labels: %s",
                     stage.loss.class_balance, meta["class_weights"])
    state = LoopState(run_dir, stage.name, stage.steps, info, model, opt, schedule, meta)
    state.step = state.start = resume(state, hash_, resume_mode)
    if state.start == 0 and info.main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "log.jsonl").write_text("")
    if info.main:
        record = {**meta, "stores": data.stores, "resumed_at": state.start}
        atomic_write_text(run_dir / "run.json", json.dumps(record, indent=2, default=str))
    barrier(info)
    ddp = _wrap_ddp(model, stage, info)
    loss_fn = CNSLoss(stage, data.origins, bench.n_classes, cfg.data.latent_pixels_per_view, ignore=config["refine"]["ignore"],
                      image_only=data.image_only, weights2d=weights.get("2d"), weights3d=weights.get("3d"))
    loader = build_loader(cfg, data, stage, state.start, info)
    hooks: list[Hook] = [DivergenceHook(), ScheduleHook()]
    if info.main:
        hooks.append(LogHook(state, cfg.log_every, cfg.data.batch_size * info.world, progress))
    if on_step is not None:
        hooks.append(StepRecorder(on_step))
    hooks.append(CheckpointHook(cfg.checkpoint_every, cfg.keep_checkpoints, stop_after))
    return train_loop(state, loader, ddp, loss_fn, cfg, hooks)


def _clip(model: CNSModel, max_norm: float) -> dict[str, float]:
    """Clip each network's gradients to global norm ``max_norm`` (0 = off); their norms before."""
    norms = {}
    for name in ("net2d", "net3d"):
        if getattr(model, name) is None:  # image-only: no 3D network
            continue
        params = [p for p in getattr(model, name).parameters() if p.grad is not None]
        if params and max_norm > 0:
            norms[f"grad_norm_{name[3:]}"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return norms


def train_loop(state: LoopState, loader: torch.utils.data.DataLoader, ddp: torch.nn.Module, loss_fn: Callable, cfg: TrainConfig,
               hooks: Sequence[Hook]) -> Path:
    """Run the loader's steps: forward, loss, backward, clipping, optimiser step, with ``hooks``
    around each; returns ``state.stopped`` when a hook stopped the run, else what ``on_end`` gives."""
    info, model, opt = state.info, state.model, state.opt
    model.train()
    tic = time.perf_counter()
    try:
        for batch in loader:
            t_data = time.perf_counter()
            wait = t_data - tic
            batch = batch.to(info.device)
            with _autocast(info.device, cfg.amp):
                out = ddp(batch)
            loss, parts = loss_fn(out, batch, step_generator(cfg.seed, state.step, info.rank))
            for hook in hooks:
                hook.on_loss(state, loss, parts, batch.sample_ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms = _clip(model, cfg.optim.grad_clip)
            opt.step()
            for hook in hooks:
                hook.on_optimizer_step(state)
            state.step += 1
            tic = time.perf_counter()
            state.t_wait += wait
            state.t_total += tic - t_data + wait
            lrs = {"lr2d": opt.param_groups[0]["lr"], **({"lr3d": opt.param_groups[1]["lr"]} if len(opt.param_groups) > 1 else {})}
            record = {"step": state.step, "loss": float(loss.detach()), **parts, **norms, **lrs, "data_wait_s": wait,
                      "step_s": tic - t_data + wait}
            for hook in hooks:
                hook.on_record(state, record)
            if state.stopped is not None:
                return state.stopped
    finally:
        for hook in hooks:
            hook.close()
    results = [hook.on_end(state) for hook in hooks]
    return next(path for path in results if path is not None)

"""The training loop of one CNS stage (single process or torchrun/DDP).

``run_stage`` opens and checks the stores, builds networks, optimiser, schedule and loader,
resumes from the newest matching checkpoint in the run directory, and steps: forward (bf16
autocast on CUDA), CNS loss, backward, per-network gradient clipping, optimiser and schedule
step, TensorBoard scalars, a progress bar with loss and throughput, checkpoints every N steps
and at the end. A non-finite loss stops the run (on every rank) naming the step and the
batch's samples; the last good checkpoint stays.

Run directory::

    <run>/final.pt                the final checkpoint (the Snakemake output)
    <run>/checkpoints/step_*.pt   periodic checkpoints (resume points)
    <run>/log.jsonl               one line per step: losses, lr, timings
    <run>/tensorboard/            TensorBoard event files
    <run>/run.json                config, stores, world size, transductive flag
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from pipeline.atomic import atomic_write_text
from pipeline.config import canonical_json, config_hash
from pipeline.errors import UserError
from pipeline.layout import code_version
from pipeline.vocab import benchmark
from train.config import StageConfig, TrainConfig, train_config
from train.engine import checkpoint as ckpt
from train.engine.distributed import DistInfo, any_true, barrier, gather_strings, setup, teardown
from train.engine.schedule import LRSchedule

log = logging.getLogger(__name__)

RESUME_IRRELEVANT = ("checkpoint_every", "keep_checkpoints", "log_every", "threads")
"""Keys of ``train`` that may change between a run and its resumption."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def stage_roles(stage: StageConfig, cfg: TrainConfig) -> list[str]:
    roles = ["prepared", "refined", "points", "sam"]
    if stage.needs_predictions and stage.predictions == "frozen":
        roles.append("predictions")
    return roles


def stage_origins(stage: StageConfig) -> list[str]:
    if stage.needs_predictions and stage.predictions == "frozen":
        return ["pseudo", "pred2d", "pred3d"]
    return ["pseudo"]


def run_hash(config: Mapping[str, Any], stage: str, init: str | Path | None = None) -> str:
    """Hash of what decides a run's trajectory (resume only continues a run with this hash):
    the ``train`` section without logging/worker keys and without the other stage's section,
    and the content of the initial checkpoint."""
    other = {"stage1": ("stage2", "predict"), "stage2": ("stage1", "predict")}.get(stage, ())
    train = {k: v for k, v in config["train"].items() if k not in RESUME_IRRELEVANT and k not in other}
    train["data"] = {k: v for k, v in train["data"].items() if k not in ("workers", "cache_samples")}
    init_id = None
    if init is not None:
        from train.predict import file_sha256

        init_id = file_sha256(init)
    return config_hash({"train": train, "benchmark": config["vocabulary"]["benchmark"], "stage": stage, "init": init_id})


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The CPU generator of a step's target and pixel draws (a function of seed, step, rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 131 + rank + 17)


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def run_stage(
    config: Mapping[str, Any],
    stage_name: str,
    stores: Mapping[str, Sequence[str]],
    run_dir: str | Path,
    init: str | Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
) -> Path:
    """Train one stage; returns the path of ``<run_dir>/final.pt``.

    ``config``: the validated config (``train`` and ``vocabulary`` sections used). ``stores``:
    role → store paths (see :func:`train.data.stores.open_shards`). ``init``: checkpoint whose
    networks start this stage (stage 2: stage 1's ``final.pt``). ``stop_after``: stop after
    this step's checkpoint as if killed (tests of resumption).
    """
    cfg = train_config(config)
    stage = cfg.stage(stage_name)
    run_dir = Path(run_dir)
    info = setup(cfg.device)
    try:
        return _run(config, cfg, stage, stores, run_dir, init, stop_after, progress, on_step, info)
    finally:
        teardown(info)


def _check_config(cfg: TrainConfig) -> None:
    if cfg.data.batch_size * cfg.data.views_per_sample < 2:
        raise UserError("config keys train.data.batch_size x views_per_sample must be >= 2 (DeepLab's batch norm needs 2 images)")


def _copy_init(init: Path, run_dir: Path, stage: StageConfig, meta_update: dict) -> Path:
    state = ckpt.load_checkpoint(init)
    meta = {**ckpt.checkpoint_meta(state), **meta_update}
    state.update(stage=stage.name, meta=json.dumps(meta))
    state.pop("format", None)
    return ckpt.save_checkpoint(run_dir / "final.pt", state)


def _run(config, cfg: TrainConfig, stage: StageConfig, stores, run_dir: Path, init, stop_after, progress, on_step, info: DistInfo) -> Path:
    from train.data.dataset import ItemBuilder, ItemDataset, StepSampler, collate
    from train.data.sample import SampleSource
    from train.data.stores import open_shards
    from train.losses.cns import CNSLoss
    from train.networks import CNSModel, build_2d, build_3d

    _check_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    bench = benchmark(cfg.benchmark)
    n_classes = bench.n_classes
    hash_ = run_hash(config, stage.name, init)
    if not stage.enabled:
        if init is None:
            raise UserError(f"{stage.name} is disabled but no initial checkpoint was given")
        if info.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            _copy_init(Path(init), run_dir, stage, {"stage": stage.name, "copied_from": str(init)})
        barrier(info)
        return run_dir / "final.pt"

    roles = stage_roles(stage, cfg)
    given = {r: list(p) for r, p in stores.items() if p}
    shards = open_shards(given, bench, roles)
    origins = stage_origins(stage)
    with_features = stage.loss.latent2d > 0 or stage.loss.latent3d > 0
    source = SampleSource(shards, n_classes, origins, cfg.loss.latent_space if with_features else None, cfg.data.cache_samples)
    online = stage.predictions == "online" and stage.needs_predictions
    init_state = ckpt.load_checkpoint(init) if init else None
    latent_dim = ckpt.checkpoint_meta(init_state)["latent_dim"] if init_state else source.feature_dim()
    if with_features and source.feature_dim() != latent_dim:
        raise UserError(f"{init}: its projection heads are {latent_dim}-d but the SAM features are {source.feature_dim()}-d (train.loss.latent_space)")

    torch.manual_seed(cfg.seed)
    net2d = build_2d(cfg.net2d, n_classes, latent_dim)
    net3d = build_3d(cfg.net3d, n_classes, latent_dim)
    if init_state is not None:
        net2d.load_state_dict(init_state["model2d"])
        net3d.load_state_dict(init_state["model3d"])
    model = CNSModel(net2d, net3d, cfg.net3d.voxel_size).to(info.device)
    opt = _optimizer(cfg, stage, model)
    schedule = LRSchedule(opt, stage.steps, cfg.optim.schedule, cfg.optim.warmup_steps)
    meta = {
        "stage": stage.name,
        "benchmark": bench.name,
        "classes": list(bench.class_names),
        "latent_dim": latent_dim,
        "latent_space": cfg.loss.latent_space,
        "net2d": asdict(cfg.net2d),
        "net3d": asdict(cfg.net3d),
        "run_hash": hash_,
        "config": config["train"],
        "code_version": code_version(),
        "transductive": cfg.transductive,
        "init": str(init) if init else None,
        "world_size": info.world,
        "samples": len(source),
    }

    start = _resume(run_dir, hash_, model, opt, schedule, info)
    if start == 0 and info.main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_dir / "log.jsonl").write_text("")
    if info.main:
        atomic_write_text(
            run_dir / "run.json",
            json.dumps({**meta, "stores": {r: list(p) for r, p in given.items()}, "resumed_at": start}, indent=2, default=str),
        )
    barrier(info)

    ddp = model
    if info.world > 1:
        l = stage.loss
        unused = min(l.ce2d, l.ce3d, l.latent2d, l.latent3d) <= 0  # a head without a loss gets no gradient
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None, find_unused_parameters=unused
        )
    loss_fn = CNSLoss(stage, origins, n_classes, cfg.data.latent_pixels_per_view)
    builder = ItemBuilder(source, cfg.data, cfg.net3d, cfg.seed, with_features=with_features, with_online=online)
    sampler = StepSampler(len(source), cfg.data.batch_size, cfg.seed, start, stage.steps, info.rank, info.world)
    loader = torch.utils.data.DataLoader(
        ItemDataset(builder),
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.data.workers,
        generator=torch.Generator().manual_seed(cfg.seed),
        persistent_workers=False,
        prefetch_factor=2 if cfg.data.workers > 0 else None,
    )
    writer = _tensorboard(run_dir) if info.main else None
    bar = None
    if info.main and progress:
        from tqdm import tqdm

        bar = tqdm(total=stage.steps, initial=start, desc=f"train {stage.name}", unit="step", dynamic_ncols=True)
    model.train()
    step = start
    t_wait = t_total = 0.0
    tic = time.perf_counter()
    try:
        for batch in loader:
            t_data = time.perf_counter()
            wait = t_data - tic
            batch = batch.to(info.device)
            with _autocast(info.device, cfg.amp):
                out = ddp(batch)
            loss, parts = loss_fn(out, batch, step_generator(cfg.seed, step, info.rank))
            bad = not bool(torch.isfinite(loss.detach()))
            if any_true(bad, info):
                ids = gather_strings(list(batch.sample_ids), info)
                last = ckpt.periodic_checkpoints(run_dir)
                raise TrainingDiverged(
                    f"{stage.name}: loss is not finite at step {step} (parts {parts}) on samples {ids}; "
                    f"last good checkpoint: {last[-1][1] if last else 'none (the run starts from scratch)'}"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms = _clip(model, cfg.optim.grad_clip)
            opt.step()
            schedule.step()
            step += 1
            tic = time.perf_counter()
            t_wait += wait
            t_total += tic - t_data + wait
            record = {"step": step, "loss": float(loss.detach()), **parts, **norms, "lr2d": opt.param_groups[0]["lr"],
                      "lr3d": opt.param_groups[1]["lr"], "data_wait_s": wait, "step_s": tic - t_data + wait}
            if info.main:
                _log_step(run_dir, record, writer, step, cfg.log_every)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{step and cfg.data.batch_size * info.world * (step - start) / max(t_total, 1e-9):.2f}",
                                    wait=f"{t_wait / max(t_total, 1e-9):.0%}")
            if on_step is not None:
                on_step(step, record)
            if step % cfg.checkpoint_every == 0 and step < stage.steps:
                _save(run_dir / "checkpoints" / f"step_{step:08d}.pt", model, opt, schedule, step, meta, info)
                if info.main:
                    ckpt.prune_checkpoints(run_dir, cfg.keep_checkpoints)
                barrier(info)
                if stop_after is not None and step >= stop_after:
                    return run_dir / "checkpoints" / f"step_{step:08d}.pt"
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
    final = run_dir / "final.pt"
    _save(final, model, opt, schedule, step, {**meta, "data_wait_share": t_wait / max(t_total, 1e-9)}, info)
    barrier(info)
    return final


def _optimizer(cfg: TrainConfig, stage: StageConfig, model) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = [
        {"params": list(model.net2d.parameters()), "lr": o.lr2d * stage.lr_scale},
        {"params": list(model.net3d.parameters()), "lr": o.lr3d * stage.lr_scale},
    ]
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr2d, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(groups, lr=o.lr2d, betas=(o.momentum, 0.999), weight_decay=o.weight_decay)


def _clip(model, max_norm: float) -> dict[str, float]:
    norms = {}
    for name in ("net2d", "net3d"):
        params = [p for p in getattr(model, name).parameters() if p.grad is not None]
        if not params:
            continue
        if max_norm > 0:
            norms[f"grad_norm_{name[3:]}"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return norms


def _save(path: Path, model, opt, schedule: LRSchedule, step: int, meta: dict, info: DistInfo) -> None:
    if not info.main:
        return
    model = _unwrap(model)
    ckpt.save_checkpoint(
        path,
        {
            "stage": meta["stage"],
            "step": step,
            "model2d": model.net2d.state_dict(),
            "model3d": model.net3d.state_dict(),
            "optimizer": opt.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": ckpt.rng_state(),
            "meta": json.dumps(meta, default=str),
        },
    )


def _resume(run_dir: Path, hash_: str, model, opt, schedule: LRSchedule, info: DistInfo) -> int:
    """Load the newest periodic checkpoint of this run (same run hash); returns its step (0 if none)."""
    found = ckpt.periodic_checkpoints(run_dir)
    for step, path in reversed(found):
        state = ckpt.load_checkpoint(path)
        if ckpt.checkpoint_meta(state).get("run_hash") != hash_:
            if info.main:
                log.warning("%s: from a run with other settings; starting afresh (old checkpoints removed)", path)
            barrier(info)
            if info.main:
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            barrier(info)
            return 0
        model.net2d.load_state_dict(state["model2d"])
        model.net3d.load_state_dict(state["model3d"])
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        ckpt.set_rng_state(state["rng"])
        _truncate_log(run_dir / "log.jsonl", step)
        log.info("resumed %s at step %d", path, step)
        return step
    return 0


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: scalars only in log.jsonl
        log.warning("tensorboard is not installed; scalars go to log.jsonl only")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _log_step(run_dir: Path, record: dict, writer, step: int, every: int) -> None:
    with (run_dir / "log.jsonl").open("a") as handle:
        handle.write(canonical_json(record) + "\n")
    if writer is not None and (step % every == 0 or step == 1):
        for key, value in record.items():
            if key != "step":
                writer.add_scalar(f"train/{key}", value, step)

"""What the training loop calls around each step: hooks, each with one job.

The loop (:func:`train.engine.trainer.train_loop`) calls, for every step and every hook in order,
``on_loss`` (before backward), ``on_optimizer_step`` (after the optimiser step), ``on_record``
(with the step's log record), then ``close`` once the loop ends (also on errors) and ``on_end``
after a loop that ran to the last step. A hook stops the run early by setting
``state.stopped`` to the path the run returns.

- :class:`ScheduleHook`: the learning-rate schedule's step.
- :class:`DivergenceHook`: a non-finite loss stops every rank, naming step, loss parts, the
  batch's samples (all ranks) and the last good checkpoint.
- :class:`LogHook`: ``log.jsonl`` (one line per step), TensorBoard scalars, the progress bar.
- :class:`StepRecorder`: hands every record to a callback (``on_step``; no evaluation).
- :class:`CheckpointHook`: periodic checkpoints (pruned to the newest ``keep``), ``stop_after``,
  the final checkpoint, and resumption from the newest periodic checkpoint of the same run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from pipeline.atomic import atomic_write_text
from pipeline.config import canonical_json
from pipeline.errors import UserError
from train.engine import checkpoint as ckpt
from train.engine.distributed import DistInfo, any_true, barrier, gather_strings
from train.engine.schedule import LRSchedule

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class LoopState:
    """What hooks see: the run (``run_dir``, ``stage``, ``steps`` in the stage, ``info``), the
    unwrapped model (``net2d``/``net3d``), optimiser, schedule, checkpoint ``meta``; the current
    ``step`` (steps done), the first step of this process (``start``), seconds waited for data
    and spent in steps (``t_wait``, ``t_total``), and ``stopped`` (set to end the run early)."""

    run_dir: Path
    stage: str
    steps: int
    info: DistInfo
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    schedule: LRSchedule
    meta: dict[str, Any]
    step: int = 0
    start: int = 0
    t_wait: float = 0.0
    t_total: float = 0.0
    stopped: Path | None = field(default=None)


class Hook:
    """A no-op hook; subclasses override what they need."""

    def on_loss(self, state: LoopState, loss: torch.Tensor, parts: dict[str, float], sample_ids: list[str]) -> None:
        """Before backward: ``loss`` () the step's loss, ``parts`` its named terms."""

    def on_optimizer_step(self, state: LoopState) -> None:
        """After the optimiser step (``state.step`` not yet advanced)."""

    def on_record(self, state: LoopState, record: dict[str, float]) -> None:
        """After the step (``state.step`` = steps done), with its log record."""

    def close(self) -> None:
        """The loop ended (normally, early or by an error)."""

    def on_end(self, state: LoopState) -> Path | None:
        """The loop ran to the last step; returns the run's result path, if this hook makes it."""
        return None


class ScheduleHook(Hook):
    """Advances the learning-rate schedule after every optimiser step."""

    def on_optimizer_step(self, state: LoopState) -> None:
        state.schedule.step()


class DivergenceHook(Hook):
    """Stops the run on every rank when any rank's loss is not finite; nothing is saved after it."""

    def on_loss(self, state: LoopState, loss: torch.Tensor, parts: dict[str, float], sample_ids: list[str]) -> None:
        bad = not bool(torch.isfinite(loss.detach()))
        if any_true(bad, state.info):
            ids = gather_strings(list(sample_ids), state.info)
            last = ckpt.periodic_checkpoints(state.run_dir)
            raise TrainingDiverged(
                f"{state.stage}: loss is not finite at step {state.step} (parts {parts}) on samples {ids}; "
                f"last good checkpoint: {last[-1][1] if last else 'none (the run starts from scratch)'}"
            )


class LogHook(Hook):
    """Main process only: appends each record to ``log.jsonl``, writes TensorBoard scalars every
    ``every`` steps (and at step 1), and drives the progress bar (loss, samples/s, data wait)."""

    def __init__(self, state: LoopState, every: int, samples_per_step: int, progress: bool) -> None:
        self.every = every
        self.samples_per_step = samples_per_step
        self.writer = _tensorboard(state.run_dir, state.start)
        self.bar = None
        if progress:
            from pipeline.progress import progress as progress_bar

            self.bar = progress_bar(total=state.steps, initial=state.start, desc=f"train {state.stage}", unit="step")

    def on_record(self, state: LoopState, record: dict[str, float]) -> None:
        with (state.run_dir / "log.jsonl").open("a") as handle:
            handle.write(canonical_json(record) + "\n")
        if self.writer is not None and (state.step % self.every == 0 or state.step == 1):
            for key, value in record.items():
                if key != "step":
                    self.writer.add_scalar(f"train/{key}", value, state.step)
        if self.bar is not None:
            total = max(state.t_total, 1e-9)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", samples_s=f"{state.step and self.samples_per_step * (state.step - state.start) / total:.2f}",
                                 wait=f"{state.t_wait / total:.0%}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class StepRecorder(Hook):
    """Calls ``callback(step, record)`` after every step, on every rank."""

    def __init__(self, callback: Callable[[int, dict], None]) -> None:
        self.callback = callback

    def on_record(self, state: LoopState, record: dict[str, float]) -> None:
        self.callback(state.step, record)


class CheckpointHook(Hook):
    """Periodic checkpoints every ``every`` steps (not at the last), the newest ``keep`` kept;
    ``stop_after``: end the run after the periodic checkpoint of that step or later (as if
    killed); at the end, ``final.pt`` with the share of time spent waiting for data."""

    def __init__(self, every: int, keep: int, stop_after: int | None) -> None:
        self.every = every
        self.keep = keep
        self.stop_after = stop_after

    def on_record(self, state: LoopState, record: dict[str, float]) -> None:
        step = state.step
        if step % self.every != 0 or step >= state.steps:
            return
        path = state.run_dir / "checkpoints" / f"step_{step:08d}.pt"
        save_state(path, state, state.meta)
        if state.info.main:
            ckpt.prune_checkpoints(state.run_dir, self.keep)
        barrier(state.info)
        if self.stop_after is not None and step >= self.stop_after:
            state.stopped = path

    def on_end(self, state: LoopState) -> Path:
        final = state.run_dir / "final.pt"
        save_state(final, state, {**state.meta, "data_wait_share": state.t_wait / max(state.t_total, 1e-9)})
        barrier(state.info)
        return final


def save_state(path: Path, state: LoopState, meta: dict[str, Any]) -> None:
    """Main process: write a checkpoint of the loop's networks, optimiser, schedule and RNG at
    ``state.step`` with ``meta`` (JSON) to ``path``."""
    if not state.info.main:
        return
    ckpt.save_checkpoint(
        path,
        {
            "stage": meta["stage"],
            "step": state.step,
            "model2d": state.model.net2d.state_dict(),
            **({} if state.model.net3d is None else {"model3d": state.model.net3d.state_dict()}),  # image-only: 2D alone
            "optimizer": state.opt.state_dict(),
            "schedule": state.schedule.state_dict(),
            "rng": ckpt.rng_state(),
            "meta": json.dumps(meta, default=str),
        },
    )


RESUME_MODES = ("auto", "resume", "fresh")
"""``auto``: resume this run's newest checkpoint, else start afresh; ``resume``: resume it or stop
with an error; ``fresh``: always start afresh (``--resume`` / ``--no-resume`` of the CLI)."""

PREVIOUS_RUN = ("final.pt", "checkpoints", "tensorboard", "log.jsonl", "run.json")
"""What a fresh start moves from ``<run>/`` to ``<run>/previous/run-<k>/`` (never deleted)."""


def resume(state: LoopState, run_hash: str, mode: str = "auto") -> int:
    """Load the newest periodic checkpoint of this run (same ``run_hash``) into the state's model,
    optimiser, schedule and the RNG, and cut ``log.jsonl`` after its step; returns that step, or 0
    when the run starts afresh (``mode``: :data:`RESUME_MODES`). A fresh start first moves the
    previous run's outputs aside (:func:`set_aside`), so its checkpoints stay and TensorBoard
    starts an empty folder. ``mode="resume"`` without a checkpoint of this run raises UserError."""
    run_dir, info = state.run_dir, state.info
    if mode not in RESUME_MODES:
        raise UserError(f"resume mode {mode!r}: expected one of {RESUME_MODES}")
    found = None
    for step, path in reversed(ckpt.periodic_checkpoints(run_dir) if mode != "fresh" else []):
        saved = _readable(path, info)
        if saved is not None:
            found = (step, path, saved)
            break
    if found is None or ckpt.checkpoint_meta(found[2]).get("run_hash") != run_hash:
        if mode == "resume":
            why = f"{found[1]} was written with other settings" if found else f"no readable checkpoint in {run_dir / 'checkpoints'}"
            raise UserError(f"--resume: {why}; --no-resume starts afresh (the previous run is moved to {run_dir / 'previous'})")
        barrier(info)
        if info.main:
            set_aside(run_dir, "other settings" if found else "a fresh start was asked for" if mode == "fresh" else "no checkpoint to resume")
        barrier(info)
        return 0
    step, path, saved = found
    state.model.net2d.load_state_dict(saved["model2d"])
    if state.model.net3d is not None:  # image-only runs build the 2D network alone
        state.model.net3d.load_state_dict(saved["model3d"])
    state.opt.load_state_dict(saved["optimizer"])
    state.schedule.load_state_dict(saved["schedule"])
    ckpt.set_rng_state(saved["rng"])
    _truncate_log(run_dir / "log.jsonl", step)
    log.info("resumed %s at step %d", path, step)
    return step


def set_aside(run_dir: Path, why: str) -> Path | None:
    """Main process: move the outputs of a previous run in ``run_dir`` (:data:`PREVIOUS_RUN`) to
    ``<run_dir>/previous/run-<k>/`` (k = 1, 2, ...); returns that folder, None if there were none."""
    present = [name for name in PREVIOUS_RUN if (run_dir / name).exists()]
    if not present:
        return None
    k = 1 + sum(1 for p in (run_dir / "previous").glob("run-*") if p.is_dir()) if (run_dir / "previous").is_dir() else 1
    dest = run_dir / "previous" / f"run-{k:03d}"
    dest.mkdir(parents=True)
    for name in present:
        os.replace(run_dir / name, dest / name)
    log.warning("%s: starting afresh (%s); the previous run's %s moved to %s", run_dir, why, ", ".join(present), dest)
    return dest


def _readable(path: Path, info: Any) -> dict[str, Any] | None:
    """A periodic checkpoint's content, or None when it cannot be read (truncated by a kill or a
    full disk): it is then renamed to ``<name>.unreadable`` (kept for inspection, never resumed
    from again) and resumption falls back to the previous one."""
    try:
        return ckpt.load_checkpoint(path)
    except UserError as err:
        barrier(info)
        if info.main:
            log.warning("%s; falling back to the previous checkpoint (this one renamed to %s.unreadable)", err, path.name)
            path.replace(path.with_name(path.name + ".unreadable"))
        barrier(info)
        return None


def _truncate_log(path: Path, step: int) -> None:
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def _tensorboard(run_dir: Path, resumed_at: int = 0) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``<run>/tensorboard``, or None without tensorboard; after
    a resume at step ``resumed_at`` > 0 it drops the events logged after that step (a fresh run
    gets an empty folder: :func:`set_aside` moved the old one)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: scalars only in log.jsonl
        log.warning("tensorboard is not installed; scalars go to log.jsonl only")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=resumed_at + 1 if resumed_at else None)

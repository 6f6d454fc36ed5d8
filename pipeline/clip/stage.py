"""The clip stage runner: a prepared store in, a ``clip`` store out (one shard).

Backend ``open_clip``: views of all samples are streamed in order (images decoded by a few
threads ahead of the encoder), batched across sample boundaries, labelled by
:class:`pipeline.clip.labeller.MaskClipLabeller` under ``torch.inference_mode`` and written
sample by sample. Backend ``simulated``: ground truth through
:mod:`pipeline.clip.simulated`. Both write the same arrays (``pipeline.stores.registry.CLIP``) with
:class:`pipeline.stores.StoreWriter`, which is atomic: on any error nothing appears at ``out``.
The model, the text classifier and the vocabulary are built before the writer starts, so a bad
checkpoint or vocabulary leaves no trace at all.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from pipeline.clip.options import StageOptions, prompt_vocabulary_from, stage_options
from pipeline.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class _SampleBuffer:
    """Outputs of one sample, filled view by view."""

    sample_id: str
    n_views: int
    output_size: tuple[int, int]  # (W, H)
    label: np.ndarray
    confidence: np.ndarray
    scores: list = field(default_factory=list)
    done: int = 0
    attrs: dict = field(default_factory=dict)

    @classmethod
    def new(cls, sample_id: str, n_views: int, output_size: tuple[int, int]) -> "_SampleBuffer":
        width, height = output_size
        return cls(
            sample_id, n_views, output_size,
            np.zeros((n_views, height, width), np.uint8), np.zeros((n_views, height, width), np.float16),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"views/label": self.label, "views/confidence": self.confidence}
        if self.scores:
            out["views/logits"] = np.concatenate(self.scores)
        return out


def _view_count(reader, sample_id: str) -> int:
    return int(reader.sample_attrs(sample_id)["sizes"].get("view", 0))


def _output_size(reader, sample_id: str, option) -> tuple[int, int]:
    if option:
        return int(option[0]), int(option[1])
    if _view_count(reader, sample_id) == 0:
        return 1, 1
    width, height = reader.read(sample_id, "views/image_size", 0)
    return int(width), int(height)


def _image_chunks(reader, chunk: int, workers: int) -> Iterator[tuple[str, list[int], np.ndarray]]:
    """(sample id, view indices, images (n, H, W, 3) uint8) in store order, decoded ahead by threads."""
    from pipeline.images import read_view_images

    jobs = [
        (sample_id, list(range(start, min(start + chunk, n))))
        for sample_id in reader.samples
        for n in [_view_count(reader, sample_id)]
        for start in range(0, n, chunk)
    ]
    if workers <= 0:
        for sample_id, views in jobs:
            yield sample_id, views, read_view_images(reader, sample_id, views)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clip-decode") as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append((job, pool.submit(read_view_images, reader, *job)))
            if len(pending) > workers + 1:
                (sample_id, views), future = pending.popleft()
                yield sample_id, views, future.result()
        while pending:
            (sample_id, views), future = pending.popleft()
            yield sample_id, views, future.result()


def _run_open_clip(reader, opts: StageOptions, vocabulary, loaded, progress, text_path=None) -> tuple[Iterator[_SampleBuffer], dict]:
    """Set up MaskCLIP (before any output exists) and return the sample iterator and root attrs.

    Returns (a lazy iterator of filled :class:`_SampleBuffer` in store order, the backend's root
    attributes). The model, the text classifier and the labeller are built here, eagerly.
    """
    from pipeline.clip.checkpoint import load_clip
    from pipeline.clip.labeller import MaskClipLabeller

    clip = opts.clip
    if loaded is None:
        loaded = load_clip(
            clip["model"], clip.get("checkpoint"), random_init=bool(clip.get("random_init")),
            model_config=clip.get("model_config"), activation=clip.get("activation", "auto"),
            mean=clip.get("mean"), std=clip.get("std"), seed=int(clip.get("seed", 0)),
        )
    text = _cached_text_classifier(loaded, vocabulary, opts, text_path)
    labeller = MaskClipLabeller(loaded, vocabulary, opts.vocabulary["templates"], clip, text=text)
    attrs = _open_clip_attrs(loaded, labeller, clip)
    batch_size = int(clip["batch_size"])
    keep_scores = bool(clip.get("store_logits"))
    return _open_clip_samples(reader, labeller, clip, batch_size, keep_scores, progress), attrs


def _cached_text_classifier(loaded, vocabulary, opts: StageOptions, text_path):
    """The text classifier read from ``text_path`` (checked against this model, vocabulary, templates
    and seed), or None when no file is given (the labeller then encodes the prompts itself)."""
    if text_path is None:
        return None
    from pipeline.clip.text import templates
    from pipeline.clip.text_cache import load_text_classifier, provenance

    expected = provenance(loaded, vocabulary, templates(opts.vocabulary["templates"]), int(opts.clip.get("seed", 0)))
    return load_text_classifier(text_path, expected)


def _open_clip_attrs(loaded, labeller, clip: Mapping[str, Any]) -> dict:
    """Root attributes of an ``open_clip`` store: the model's provenance and preprocessing, the
    labeller's precision/device/templates (JSON-ready dict)."""
    return {
        "model": loaded.model_name,
        "model_config": loaded.model_config,
        "checkpoint": loaded.checkpoint,
        "checkpoint_sha256": loaded.checkpoint_sha256,
        "activation": loaded.activation,
        "mean": list(loaded.mean),
        "std": list(loaded.std),
        "native_size": list(loaded.native_size),
        "patch_size": list(loaded.patch_size),
        "input_size": clip.get("input_size"),  # null: per sample, see the sample attribute input_size
        "precision": labeller.precision,
        "device": labeller.device.type,
        "templates": labeller.templates,
        "logit_scale": 100.0,
    }


def _label_batch(labeller, batch: list, keep_scores: bool, progress) -> None:
    """Label the batched views (``batch``: (buffer, view index, image (H, W, 3) uint8) of one image
    and output size) into their sample buffers, advance ``progress`` and empty ``batch``; returns None."""
    if not batch:
        return
    images = np.stack([image for _, _, image in batch])
    result = labeller.label(images, batch[0][0].output_size, keep_scores)
    for i, (buf, view, _) in enumerate(batch):
        buf.label[view], buf.confidence[view] = result.label[i], result.confidence[i]
        if keep_scores:
            buf.scores.append(result.scores[i : i + 1])
        buf.done += 1
        buf.attrs.update(grid=list(result.grid), input_size=list(result.input_size))
    progress.update(len(batch))
    batch.clear()


def _ready(pending: deque) -> Iterator[_SampleBuffer]:
    """Pop and yield the leading buffers of ``pending`` whose views are all labelled, in order."""
    while pending and pending[0].done == pending[0].n_views:
        yield pending.popleft()


def _open_clip_samples(reader, labeller, clip: Mapping[str, Any], batch_size: int, keep_scores: bool,
                       progress) -> Iterator[_SampleBuffer]:
    """Yield each sample's filled :class:`_SampleBuffer` in store order (lazily: nothing runs before
    the first ``next``), labelling views in batches of ``batch_size`` across sample boundaries; a
    batch is cut early where the image or output size changes."""
    pending: deque[_SampleBuffer] = deque()  # started, not yet handed to the writer, in order
    batch: list[tuple[_SampleBuffer, int, np.ndarray]] = []
    chunks = _image_chunks(reader, batch_size, int(clip.get("decode_workers", 2)))
    chunk = next(chunks, None)
    for sample_id in reader.samples:
        buf = _SampleBuffer.new(
            sample_id, _view_count(reader, sample_id), _output_size(reader, sample_id, clip.get("output_size"))
        )
        pending.append(buf)
        while chunk is not None and chunk[0] == sample_id:
            for view, image in zip(chunk[1], chunk[2]):
                if batch and (image.shape != batch[0][2].shape or batch[0][0].output_size != buf.output_size):
                    _label_batch(labeller, batch, keep_scores, progress)
                batch.append((buf, view, image))
                if len(batch) == batch_size:
                    _label_batch(labeller, batch, keep_scores, progress)
                    yield from _ready(pending)
            chunk = next(chunks, None)
        yield from _ready(pending)
    _label_batch(labeller, batch, keep_scores, progress)
    yield from _ready(pending)


def _run_simulated(reader, opts: StageOptions, vocabulary, gt_lut, progress) -> tuple[Iterator[_SampleBuffer], dict]:
    """Set up the simulated backend and return the sample iterator and root attrs."""
    from pipeline.clip.simulated import NoiseModel, simulate_views
    from pipeline.images import resize_labels
    from pipeline.vocab import apply_lut

    clip = opts.clip
    noise = NoiseModel.from_options(clip["simulated"], vocabulary.benchmark)
    if gt_lut is None:
        gt_lut = view_ground_truth_lut(reader, vocabulary.benchmark)
    if clip.get("store_logits"):
        log.warning("clip.store_logits is ignored by the simulated backend (it has no logits)")
    missing = [s for s in reader.samples if _view_count(reader, s) and not reader.has(s, "views/label")]
    if missing:
        raise UserError(f"{reader.path}: the simulated backend needs 2D ground truth (views/label); samples {missing[:3]} have none")
    attrs = {"simulated": dict(clip["simulated"]), "checkpoint_sha256": None}

    def samples() -> Iterator[_SampleBuffer]:
        for sample_id in reader.samples:
            n_views = _view_count(reader, sample_id)
            size = _output_size(reader, sample_id, clip.get("output_size"))
            buf = _SampleBuffer.new(sample_id, n_views, size)
            if n_views:
                raw = reader.read(sample_id, "views/label")
                classes = apply_lut(gt_lut, raw, default=255).astype(np.uint8)
                instances = reader.read(sample_id, "views/instance") if reader.has(sample_id, "views/instance") else None
                if (classes.shape[2], classes.shape[1]) != size:
                    classes = np.stack([resize_labels(c, size) for c in classes])
                    if instances is not None:
                        instances = np.stack([resize_labels(i, size) for i in instances])
                frames = reader.read(sample_id, "views/frame")
                buf.label, buf.confidence = simulate_views(classes, instances, frames, noise, sample_id)
                progress.update(n_views)
            yield buf

    return samples(), attrs


def view_ground_truth_lut(reader, bench) -> np.ndarray:
    """LUT: the prepared store's raw 2D label ids → benchmark class index (uint8, 255 = ignore)."""
    from pipeline.vocab import prepared_ground_truth_luts

    try:
        luts = prepared_ground_truth_luts(reader.attrs, bench)
    except ValueError as err:
        raise UserError(f"{reader.path}: {err}") from None
    if "views" not in luts:
        raise UserError(f"{reader.path}: the store declares no label space for its 2D labels (root attribute label_spaces)")
    return luts["views"]


def run_clip_stage(
    prepared: str | Path,
    out: str | Path,
    options: Mapping[str, Any] | StageOptions | None = None,
    *,
    loaded: Any = None,
    gt_lut: np.ndarray | None = None,
    text: str | Path | None = None,
) -> Path:
    """Run the clip stage on a prepared store and write the ``clip`` store ``out``.

    ``options``: ``{"clip": {...}, "vocabulary": {...}}`` (validated, defaults filled).
    ``loaded``: an already loaded :class:`pipeline.clip.checkpoint.LoadedClip` (tests, benchmarks).
    ``gt_lut``: raw 2D label id → class LUT for the simulated backend (default: from the store).
    ``text``: a text classifier file from ``clip-text`` (default: encode the prompts here).
    """
    from pipeline.progress import progress

    from pipeline.stores import StoreReader, StoreWriter

    opts = options if isinstance(options, StageOptions) else stage_options(options)
    reader = StoreReader(prepared, "prepared")
    vocabulary = prompt_vocabulary_from(opts.vocabulary)
    total = sum(_view_count(reader, s) for s in reader.samples)
    out = Path(out)
    backend = opts.clip["backend"]
    with progress(total=total, desc=f"clip {out.name}", unit="view") as progress:
        if backend == "simulated":
            samples, attrs = _run_simulated(reader, opts, vocabulary, gt_lut, progress)
        else:
            samples, attrs = _run_open_clip(reader, opts, vocabulary, loaded, progress, text)
        root_attrs = {
            "backend": backend,
            "vocabulary": {**vocabulary.as_dict(), "templates": list(opts.vocabulary["templates"])},
            "options": opts.as_dict(),
            "options_hash": opts.hash,
            "output_size": opts.clip.get("output_size"),  # null: the working size
            "prepared_store": {"name": reader.path.name, "created": reader.attrs.get("created"),
                               "code_version": reader.attrs.get("code_version")},
            **attrs,
        }
        with StoreWriter(out, "clip", attrs=root_attrs) as writer:
            for buf in samples:
                writer.add_sample(buf.sample_id, buf.arrays(), attrs=buf.attrs)
    log.info("wrote %s (%d samples, %d views, backend %s)", out, len(reader.samples), total, backend)
    return out

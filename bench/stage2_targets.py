"""How good are stage 2's targets? Every label source stage 2 can draw, scored on training scenes.

Stage 2 trains each network on a switching mix of the pipeline's pseudo-labels (``pseudo``), its
own frozen, SAM-refined stage-1 prediction (``self``) and the other network's (``cross``)
(docs/method.md, "Prediction consistency"). This diagnostic scores each of those targets against
the ground truth **of the shards they are used on** (by default the training split). It is a
diagnostic of the targets only: nothing (no checkpoint, weight or option) is selected with it.

Rows (label resolution for pixels, every keyframe point for points):

* 2D: ``pseudo`` = ``refined: views/label``; ``self`` = ``predictions: views/label`` (the 2D
  network's prediction refined by SAM segments); ``self raw`` = ``predictions: views/label_raw``
  (unrefined; when the stores hold it); ``cross`` = ``predictions: views/label_3d`` (the 3D
  prediction carried to pixels through the pairs and refined).
* 3D: ``pseudo`` = ``points: points/label``; ``self`` = ``predictions: points/label`` (refined 3D
  prediction); ``self raw`` = ``predictions: points/label_raw``; ``cross`` =
  ``predictions: points/label_2d`` (majority of the refined 2D prediction over the point's pairs).

Columns: mIoU over the classes present in the ground truth (one class set per domain, the same
for every row: :func:`pipeline.metrics.comparable`'s rule; unlabelled elements count as misses),
mIoU and accuracy on the elements the source labels (the unlabelled column dropped,
:func:`pipeline.metrics.labelled_only`), accuracy, coverage (share of all elements, with or without
ground truth, whose label is not 255), agreement with the pseudo-label (share of the elements both
label on which they agree), and on the elements with ground truth where the source and the
pseudo-label both label and *disagree*: how many, and the share the source gets right and the
share the pseudo-label gets right (the two need not add to 1: both can be wrong). The last column
is the source's accuracy where the pseudo-label has no label (what switching adds there).

Ground truth is read as the pseudo-label report reads it (:func:`pipeline.report.shard.ground_truth`:
the prepared store's raw ids through :func:`pipeline.vocab.prepared_ground_truth_luts`, 2D resized
nearest to the label resolution); points are the keyframe points (``sweep_points`` excluded, as
``train.evaluate`` scores them).

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/stage2_targets.py --results results/demo_learning_fast \
        --predictions results/demo_learning_fast/ablation/a3_switching/seed0 [--splits train] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.metrics import CLASS_SET, accuracy, confusion, labelled_only, markdown_table, mean_iou, present_in_truth, scored_mask, summary
from pipeline.vocab import IGNORE


@dataclass(frozen=True)
class Source:
    """One target stage 2 can draw: its domain (``2D`` pixels / ``3D`` points), its name from the
    domain's network's point of view, and the store and array holding it."""

    domain: str
    name: str
    store: str
    array: str
    optional: bool = False

    @property
    def key(self) -> str:
        """``2D self raw`` → ``2d_self_raw`` (the JSON row key)."""
        return f"{self.domain}_{self.name}".lower().replace(" ", "_")


SOURCES: tuple[Source, ...] = (
    Source("2D", "pseudo", "refined", "views/label"),
    Source("2D", "self", "predictions", "views/label"),
    Source("2D", "self raw", "predictions", "views/label_raw", optional=True),
    Source("2D", "cross", "predictions", "views/label_3d"),
    Source("3D", "pseudo", "points", "points/label"),
    Source("3D", "self", "predictions", "points/label"),
    Source("3D", "self raw", "predictions", "points/label_raw", optional=True),
    Source("3D", "cross", "predictions", "points/label_2d"),
)
DOMAINS = ("2D", "3D")


def _share(part: int, whole: int) -> float:
    """``part / whole`` as float, NaN when ``whole`` is 0."""
    return part / whole if whole else float("nan")


@dataclass
class Tally:
    """Counts of one source over a split: the confusion matrix (K, K + 1) int64 against the ground
    truth, and the element counts behind coverage, agreement and the disagreement columns."""

    n_classes: int
    matrix: np.ndarray = field(init=False)
    elements: int = 0  # every element (pixel at label resolution, keyframe point), ground truth or not
    labelled: int = 0  # elements whose label is not IGNORE
    both: int = 0  # labelled by this source and by the pseudo-label
    agree: int = 0  # ... with the same class
    disagree: int = 0  # labelled by both, different classes, ground truth known
    source_right: int = 0  # ... where this source equals the ground truth
    pseudo_right: int = 0  # ... where the pseudo-label equals the ground truth
    gap: int = 0  # pseudo-label IGNORE, this source labelled, ground truth known
    gap_right: int = 0  # ... where this source equals the ground truth
    samples: int = 0

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.n_classes, self.n_classes + 1), np.int64)

    def add(self, gt: np.ndarray, label: np.ndarray, pseudo: np.ndarray) -> None:
        """Count one sample: ``gt``, ``label`` and ``pseudo`` are flat (n,) uint8 class indices of
        the same elements (IGNORE = 255 for no ground truth / no label)."""
        gt, label, pseudo = (np.asarray(a).reshape(-1) for a in (gt, label, pseudo))
        if not gt.shape == label.shape == pseudo.shape:
            raise ValueError(f"element counts differ: ground truth {gt.size}, source {label.size}, pseudo-label {pseudo.size}")
        self.matrix += confusion(gt, label, self.n_classes)
        has, has_pseudo, has_gt = label != IGNORE, pseudo != IGNORE, gt != IGNORE
        both = has & has_pseudo
        differ = both & (label != pseudo) & has_gt
        gap = has & ~has_pseudo & has_gt
        self.elements += int(gt.size)
        self.labelled += int(has.sum())
        self.both += int(both.sum())
        self.agree += int((both & (label == pseudo)).sum())
        self.disagree += int(differ.sum())
        self.source_right += int((differ & (label == gt)).sum())
        self.pseudo_right += int((differ & (pseudo == gt)).sum())
        self.gap += int(gap.sum())
        self.gap_right += int((gap & (label == gt)).sum())
        self.samples += 1


def _read_domain(readers: dict[str, Any], sample: str, domain: str) -> dict[Source, np.ndarray]:
    """The labels of every source of ``domain`` a sample holds: source → (V, Hl, Wl) or (P,) uint8."""
    out: dict[Source, np.ndarray] = {}
    for source in SOURCES:
        reader = readers.get(source.store)
        if source.domain == domain and reader is not None and reader.has(sample, source.array):
            out[source] = reader.read(sample, source.array)
    return out


def score_shard(readers: dict[str, Any], luts: dict[str, np.ndarray], tallies: dict[Source, Tally]) -> int:
    """Add every sample of one shard to ``tallies``; ``readers`` maps store name (``prepared``,
    ``refined``, ``predictions``, optionally ``points``) to its :class:`StoreReader`. Returns the
    number of samples."""
    from pipeline.report.shard import ground_truth
    from pipeline.stores.keyframes import keyframe_points
    from pipeline.stores import StoreError

    prepared = readers["prepared"]
    for sample in prepared.samples:
        views = _read_domain(readers, sample, "2D")
        points = _read_domain(readers, sample, "3D")
        pseudo2d = views[SOURCES[0]]
        gt_views, gt_points = ground_truth(prepared, sample, luts, pseudo2d.shape[1:])
        for domain, labels, gt in (("2D", views, gt_views), ("3D", points, gt_points)):
            pseudo = next((v for s, v in labels.items() if s.name == "pseudo"), None)
            if gt is None or pseudo is None:  # no ground truth (nuScenes pixels) or no pseudo-labels (no points store)
                continue
            for source, label in labels.items():
                if label.shape != gt.shape:
                    raise StoreError(f"{readers[source.store].path}: sample {sample}: {source.array} has shape {label.shape}, "
                                     f"the ground truth {gt.shape}")
            n = keyframe_points(prepared, sample, gt.shape[0]) if domain == "3D" else gt.shape[0]
            for source, label in labels.items():
                tallies[source].add(gt[:n], label[:n], pseudo[:n])
    return len(prepared.samples)


def summarise(tallies: dict[Source, Tally], class_names: Sequence[str], scored: Sequence[int] | None) -> list[dict[str, Any]]:
    """One JSON-ready row per source that saw a sample: the metrics of the module docstring; every
    row of a domain averages the same classes (present in that domain's ground truth, scored)."""
    rows: list[dict[str, Any]] = []
    k = len(class_names)
    for domain in DOMAINS:
        seen = {s: t for s, t in tallies.items() if s.domain == domain and t.samples}
        if not seen:
            continue
        chosen = present_in_truth(*(t.matrix for t in seen.values())) & scored_mask(k, scored)
        for source, t in seen.items():
            res = summary(t.matrix, class_names, chosen, scored)
            labelled = labelled_only(t.matrix)
            is_pseudo = source.name == "pseudo"
            rows.append({
                "key": source.key, "domain": domain, "source": source.name, "store": source.store, "array": source.array,
                "samples": t.samples, "elements": t.elements, "elements_with_gt": int(t.matrix.sum()),
                "miou": res["miou"], "miou_labelled": mean_iou(labelled, chosen), "accuracy": res["accuracy"],
                "accuracy_labelled": accuracy(labelled), "coverage": _share(t.labelled, t.elements),
                "agreement": None if is_pseudo else _share(t.agree, t.both), "labelled_by_both": None if is_pseudo else t.both,
                "disagree": None if is_pseudo else t.disagree,
                "disagree_source_right": None if is_pseudo else _share(t.source_right, t.disagree),
                "disagree_pseudo_right": None if is_pseudo else _share(t.pseudo_right, t.disagree),
                "pseudo_unlabelled": None if is_pseudo else t.gap,
                "pseudo_unlabelled_right": None if is_pseudo else _share(t.gap_right, t.gap),
                "class_set": res["class_set"], "iou": res["iou"], "gt_count": res["gt_count"],
            })
    return rows


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The table: one line per (domain, source) row of :func:`summarise`, values in percent."""
    lines = [
        f"Stage-2 targets against ground truth on split(s) {', '.join(meta['splits'])} ({meta['shards']} shards, "
        f"{meta['samples']} samples; predictions from `{meta['predictions']}`); benchmark `{meta['benchmark']}`. "
        f"A diagnostic of the targets on the scenes they train on; nothing is selected with it.",
        "",
    ]
    for domain in DOMAINS:
        sel = [r for r in rows if r["domain"] == domain]
        if sel:
            lines.append(f"* {domain}: mIoU averages the same {len(sel[0]['class_set'])} classes for every row, the {CLASS_SET}; "
                         f"{sel[0]['elements']} {'pixels' if domain == '2D' else 'points'} in all, {sel[0]['elements_with_gt']} with ground truth.")
    for note in meta.get("notes", []):
        lines.append(f"* {note}")
    lines += [
        "* *labelled*: on the elements the source labels only; *coverage*: share of all elements labelled; *agree*: share of the "
        "elements labelled by both the source and the pseudo-label on which they agree; *disagree n*: elements with ground truth "
        "where both label and differ; *src right* / *pseudo right*: share of those the source / the pseudo-label gets right; "
        "*no pseudo: n, right*: elements with ground truth the source labels and the pseudo-label does not, and the source's accuracy there.",
        "",
        "| domain | source | array | mIoU | mIoU labelled | accuracy | accuracy labelled | coverage | agree | disagree n | src right | pseudo right | no pseudo: n | no pseudo: right |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["miou"], r["miou_labelled"], r["accuracy"], r["accuracy_labelled"], r["coverage"], r["agreement"]]
        lines.append(
            f"| {r['domain']} | {r['source']} | `{r['store']}:{r['array']}` | " + " | ".join(_pct(c) for c in cells)
            + f" | {'–' if r['disagree'] is None else r['disagree']} | {_pct(r['disagree_source_right'])} | {_pct(r['disagree_pseudo_right'])}"
            + f" | {'–' if r['pseudo_unlabelled'] is None else r['pseudo_unlabelled']} | {_pct(r['pseudo_unlabelled_right'])} |"
        )
    return "\n".join(lines) + "\n"


def per_class(rows: list[dict[str, Any]], class_names: Sequence[str]) -> str:
    """Per-class IoU tables of each domain (:func:`pipeline.metrics.markdown_table`)."""
    text = ""
    for domain in DOMAINS:
        sel = {f"{r['source']}": r for r in rows if r["domain"] == domain}
        if sel:
            text += f"\n### {domain} per class\n\n" + markdown_table(
                {name: {**r, "miou_gt_or_pred": r["miou"]} for name, r in sel.items()}, class_names,
                "pixels" if domain == "2D" else "points")
    return text


def benchmark_name(config: Sequence[str] | None, refined: str) -> str:
    """``vocabulary.benchmark`` of the config files if given, else the one the refined store
    records, else ``scannet20`` (the schema's default)."""
    if config:
        from pipeline.config import load_config

        return str(load_config(list(config))["vocabulary"]["benchmark"])
    from pipeline.stores import StoreReader

    vocab = StoreReader(refined, "refined").attrs.get("vocabulary") or {}
    return str(vocab.get("benchmark") or "scannet20")


def find_stores(results: str | Path, predictions: str | Path, splits: Sequence[str]) -> dict[str, list[str]]:
    """``{store: [paths]}``: ``prepared``, ``refined`` (and ``points`` when the dataset has points)
    under ``results``, ``predictions`` under ``predictions`` (``<dir>/predictions/<shard>.zarr``),
    with the same shards; :class:`StoreError` naming what is missing otherwise."""
    from pipeline.stores import StoreError
    from pipeline.stores.discover import discover_stores, split_shards

    found = discover_stores(results, ["prepared", "refined", "points"], ["refined"], splits)
    names = [Path(p).name[: -len(".zarr")] for p in found["prepared"]]
    preds = split_shards(predictions, "predictions", splits)
    have = [p.name[: -len(".zarr")] for p in preds]
    if have != names:
        missing = sorted(set(names) - set(have))
        raise StoreError(f"{Path(predictions) / 'predictions'}: shards {missing or sorted(set(have) - set(names))} "
                         f"{'missing' if missing else 'have no prepared store'} (did `python -m train predict` run for every shard?)")
    found["predictions"] = [str(p) for p in preds]
    return found


def run(results: str | Path, predictions: str | Path, splits: Sequence[str], config: Sequence[str] | None = None) -> dict[str, Any]:
    """Score every stage-2 target of ``splits``: ``{"meta": ..., "rows": [...]}`` (rows of :func:`summarise`)."""
    from pipeline.stores import StoreError, StoreReader
    from pipeline.vocab import benchmark, prepared_ground_truth_luts

    stores = find_stores(results, predictions, splits)
    bench = benchmark(benchmark_name(config, stores["refined"][0]))
    tallies = {s: Tally(bench.n_classes) for s in SOURCES}
    samples = 0
    for i, prep_path in enumerate(stores["prepared"]):
        prepared = StoreReader(prep_path, "prepared")
        readers: dict[str, Any] = {"prepared": prepared}
        for name in ("refined", "points", "predictions"):
            if name in stores:
                readers[name] = StoreReader(stores[name][i], name, benchmark=bench.name)
                readers[name].require_samples(prepared)
        try:
            luts = prepared_ground_truth_luts(prepared.attrs, bench)
        except ValueError as err:
            raise StoreError(f"{prepared.path}: {err}") from None
        samples += score_shard(readers, luts, tallies)
        print(f"{Path(prep_path).name}: {len(prepared.samples)} samples", file=sys.stderr)
    notes = []
    for source in SOURCES:
        t = tallies[source]
        if source.optional and t.samples == 0:
            notes.append(f"{source.domain} {source.name} (`{source.store}:{source.array}`): absent from the stores, no row.")
        elif 0 < t.samples < samples:
            notes.append(f"{source.domain} {source.name}: only {t.samples} of {samples} samples hold `{source.array}`; its row covers those.")
    meta = {"benchmark": bench.name, "splits": list(splits), "shards": len(stores["prepared"]), "samples": samples,
            "results": str(results), "predictions": str(predictions), "notes": notes}
    return {"meta": meta, "rows": summarise(tallies, list(bench.class_names), bench.scored_classes), "class_names": list(bench.class_names)}


def _json_safe(value: Any) -> Any:
    """NaN → None, recursively (strict JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print the Markdown table (and ``--per-class`` tables); ``--json`` writes the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", required=True, help="the pipeline's results folder (prepared/, refined/, points/)")
    parser.add_argument("--predictions", required=True,
                        help="folder holding predictions/<shard>.zarr (e.g. <results>/ablation/a3_switching/seed0)")
    parser.add_argument("--splits", nargs="+", default=["train"], help="splits to score (default: train, where stage 2 trains)")
    parser.add_argument("--config", nargs="+", metavar="YAML", help="config file(s) for vocabulary.benchmark (default: the stores' record)")
    parser.add_argument("--json", help="write meta and rows as JSON here")
    parser.add_argument("--per-class", action="store_true", help="also print per-class IoU tables")
    args = parser.parse_args(argv)
    from pipeline.stores import StoreError

    try:
        out = run(args.results, args.predictions, args.splits, args.config)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = markdown(out["rows"], out["meta"])
    if args.per_class:
        text += per_class(out["rows"], out["class_names"])
    print(text, end="")
    if args.json:
        from pipeline.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(_json_safe(out), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

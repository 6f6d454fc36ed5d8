"""``python -m pipeline report shard|merge|run``: the pseudo-label quality report, and the report of a trained stage."""

from __future__ import annotations

import argparse


def _shard(args: argparse.Namespace) -> int:
    from pipeline.report.shard import shard_report

    shard_report(
        args.prepared, args.clip, args.sam, args.refined, args.points, args.benchmark, args.out,
        overlays_out=args.overlays_out, overlays=args.overlays,
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from pipeline.report.merge import write_split_report

    write_split_report(args.shards, args.split, args.json, args.markdown, args.png, html=args.html)
    return 0


def _run(args: argparse.Namespace) -> int:
    from pipeline.report.run import write_run_report

    write_run_report(args.evaluation, args.log, args.html, args.curves, args.confusion, args.views, args.points)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="pseudo-label quality report: per-shard confusion matrices, per-split JSON/Markdown/PNG",
        description=(
            "Measure the pseudo-labels against ground truth (when the prepared store has it): IoU of raw "
            "CLIP and SAM-refined pixel labels (both nesting orders) and of raw and refined point labels, "
            "plus coverage. `shard` writes one shard's confusion matrices (JSON) and an overlay figure; "
            "`merge` sums the matrices of a split's shards and writes the split's report; `run` draws a trained "
            "stage's report (metrics, curves, heatmaps, pictures)."
        ),
    )
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    shard = modes.add_parser("shard", help="one shard's confusion matrices, coverage and overlays", description="One shard's part of the report.")
    shard.add_argument("--prepared", required=True, help="prepared store of the shard (ground truth, images)")
    shard.add_argument("--clip", required=True, help="CLIP store of the shard")
    shard.add_argument("--sam", required=True, help="SAM store of the shard (mask coverage)")
    shard.add_argument("--refined", required=True, help="refine store of the shard")
    shard.add_argument("--points", default=None, help="points store of the shard (omitted for image-only datasets such as nuImages)")
    shard.add_argument("--benchmark", default="scannet20", help="evaluation vocabulary (default scannet20)")
    shard.add_argument("--out", required=True, help="output JSON (confusion matrices and coverage)")
    shard.add_argument("--overlays-out", default=None, help="output PNG of image / CLIP / refined / ground-truth overlays")
    shard.add_argument("--overlays", type=int, default=2, help="views drawn in the overlay figure (default 2)")
    shard.set_defaults(func=_shard)
    merge = modes.add_parser("merge", help="one split's report from its shards", description="Sum the shards' matrices; write JSON, Markdown, PNG.")
    merge.add_argument("--split", required=True, help="split name (train, val, ...)")
    merge.add_argument("--json", required=True, help="output JSON report")
    merge.add_argument("--markdown", required=True, help="output Markdown report")
    merge.add_argument("--png", required=True, help="output PNG of per-stage and per-class bars")
    merge.add_argument("--html", default=None, help="output HTML of the Markdown report (what `snakemake --report` shows)")
    merge.add_argument("shards", nargs="+", help="shard JSON files of this split")
    merge.set_defaults(func=_merge)
    run = modes.add_parser("run", help="a trained stage's report: metrics HTML, training curves, confusion heatmaps, pictures",
                           description="From an evaluate folder and the stage's log.jsonl: the metrics tables as HTML, "
                           "training curves, row-normalised confusion heatmaps, and copies of the evaluation's figures.")
    run.add_argument("--evaluation", required=True, help="evaluate output folder (<results>/evaluate/<stage>)")
    run.add_argument("--log", required=True, help="the stage's training log (<results>/train/<stage>/log.jsonl)")
    run.add_argument("--html", required=True, help="output HTML of metrics.md")
    run.add_argument("--curves", required=True, help="output PNG of the training curves")
    run.add_argument("--confusion", required=True, help="output PNG of the confusion heatmaps")
    run.add_argument("--views", default=None, help="output PNG: copy of figures/views.png (2D overlays)")
    run.add_argument("--points", default=None, help="output PNG: copy of figures/points.png (3D from above)")
    run.set_defaults(func=_run)

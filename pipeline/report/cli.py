"""``python -m pipeline report shard|merge``: the pseudo-label quality report."""

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

    write_split_report(args.shards, args.split, args.json, args.markdown, args.png)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="pseudo-label quality report: per-shard confusion matrices, per-split JSON/Markdown/PNG",
        description=(
            "Measure the pseudo-labels against ground truth (when the prepared store has it): IoU of raw "
            "CLIP and SAM-refined pixel labels (both nesting orders) and of raw and refined point labels, "
            "plus coverage. `shard` writes one shard's confusion matrices (JSON) and an overlay figure; "
            "`merge` sums the matrices of a split's shards and writes the split's report."
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
    merge.add_argument("shards", nargs="+", help="shard JSON files of this split")
    merge.set_defaults(func=_merge)

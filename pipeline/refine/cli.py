"""``python -m pipeline refine``: max-vote CLIP labels inside SAM masks."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import stage_config
    from pipeline.refine.stage import refine_shard

    config = stage_config(args.options)
    refine_shard(args.clip, args.sam, args.out, config["refine"], benchmark=config["vocabulary"]["benchmark"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "refine",
        help="refine CLIP pseudo-labels by max voting inside SAM masks",
        description=(
            "For every view of a shard, each SAM mask takes the majority CLIP label of its pixels and "
            "gives it to all of them; overlapping masks are resolved by the nesting order; pixels in no "
            "mask keep their CLIP label. Writes one refine store with the labels in the configured order "
            "(views/label) and in the other one (views/label_alt). See docs/method.md. The store "
            "appears only when complete."
        ),
    )
    parser.add_argument("--clip", required=True, help="CLIP store of the shard (<results>/clip/<shard>.zarr)")
    parser.add_argument("--sam", required=True, help="SAM store of the shard (<results>/sam/<shard>.zarr)")
    parser.add_argument("--out", required=True, help="output refine store (<results>/refined/<shard>.zarr)")
    parser.add_argument(
        "--options",
        default="{}",
        help='{"refine": {...}, "vocabulary": {"benchmark": ...}} as JSON: the `refine` config section, '
        "nesting_order (part|object, default part), ignore (abstain|compete, default abstain), and the benchmark "
        "the CLIP store must have been labelled for (default scannet20); omitted keys take the schema defaults",
    )
    parser.set_defaults(func=_run)

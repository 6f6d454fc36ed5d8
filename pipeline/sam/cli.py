"""``python -m pipeline sam``: run the SAM stage on one prepared store."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import stage_config
    from pipeline.sam.stage import run_sam_stage

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_sam_stage(args.prepared, args.out, stage_config(args.options)["sam"], shard=args.shard)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sam",
        help="SAM masks, segment-id maps and feature maps of one prepared store",
        description=(
            "Run SAM's automatic mask generator on every view of a prepared store, with one image-encoder "
            "pass per view serving both the masks and the stored feature map (crop layers add their own "
            "passes), or the simulated backend built from ground-truth instances. Writes one `sam` store "
            "(masks as row-major run lengths, a segment-id map in the configured nesting order, int8 PCA "
            "feature coefficients of the valid embedding cells). The store appears only when complete; on "
            "any error (bad checkpoint, bad options) nothing is written."
        ),
    )
    parser.add_argument("--prepared", required=True, help="input prepared store (<results>/prepared/<shard>.zarr)")
    parser.add_argument("--out", required=True, help="output store path (<results>/sam/<shard>.zarr)")
    parser.add_argument(
        "--options",
        default="{}",
        help='{"sam": {...}}: the `sam` config section as JSON (defaults filled from the schema), '
        "e.g. '{\"sam\": {\"model_type\": \"vit_h\", \"checkpoint\": \"sam_vit_h_4b8939.pth\"}}'",
    )
    parser.add_argument("--shard", default=None, help="shard name recorded in metadata (default: the prepared store's)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.set_defaults(func=_run)

"""``python -m pipeline clip``: run the clip stage on one prepared store (one shard)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "clip",
        help="dense CLIP pseudo-labels (MaskCLIP) for every view of a prepared store",
        description=(
            "Label every view of a prepared store with MaskCLIP (an open_clip ViT from a local checkpoint; "
            "weights are never downloaded) or with the simulated backend (ground truth through a noise model, "
            "a benchmark instrument). Writes a clip store (views/label uint8, views/confidence float16, "
            "optionally views/logits); it appears only when complete. All options are the `clip` and "
            "`vocabulary` config sections, documented in workflow/schemas/config.schema.yaml."
        ),
    )
    parser.add_argument("--prepared", required=True, help="input prepared store (<results>/prepared/<shard>.zarr)")
    parser.add_argument("--out", required=True, help="output clip store (<results>/clip/<shard>.zarr)")
    parser.add_argument(
        "--options",
        default="{}",
        help=(
            'JSON object {"clip": {...}, "vocabulary": {...}} with the two config sections; missing keys take '
            "the schema defaults (default: {} = all defaults, which need clip.checkpoint or clip.random_init)"
        ),
    )
    parser.add_argument(
        "--text",
        default=None,
        help="text classifier from `python -m pipeline clip-text` (default: encode the prompts in this run)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.clip.stage import run_clip_stage
    from pipeline.config import parse_options

    run_clip_stage(args.prepared, args.out, parse_options(args.options), text=args.text)
    return 0

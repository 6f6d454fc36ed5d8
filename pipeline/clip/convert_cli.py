"""``python -m pipeline clip-convert``: OpenAI TorchScript CLIP archive → safetensors (one-off)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "clip-convert",
        help="convert an OpenAI TorchScript CLIP archive (.pt) to .safetensors, once",
        description=(
            "OpenAI's CLIP .pt files are TorchScript archives, which the pipeline does not load "
            "(it only reads weights without running code). This command converts one to a .safetensors "
            "state dict for an open_clip model. WARNING: it runs torch.jit.load, which executes the "
            "TorchScript code inside the archive: use it only on files you trust. Then set "
            "clip.checkpoint to the output and clip.model to the same model name."
        ),
    )
    parser.add_argument("--in", dest="src", required=True, help="TorchScript archive, e.g. ViT-B-16.pt from OpenAI")
    parser.add_argument("--out", required=True, help="output .safetensors file (written atomically)")
    parser.add_argument(
        "--model",
        required=True,
        help="open_clip model name the weights belong to; OpenAI's need the '-quickgelu' names, e.g. ViT-B-16-quickgelu",
    )
    parser.add_argument(
        "--model-config",
        default=None,
        help="optional open_clip model-config JSON (object) to use instead of the built-in config of --model",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.clip.convert import convert_torchscript
    from pipeline.config import parse_options

    config = parse_options(args.model_config, "--model-config") if args.model_config else None
    convert_torchscript(args.src, args.out, args.model, config)
    return 0

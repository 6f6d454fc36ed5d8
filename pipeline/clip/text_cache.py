"""The CLIP text classifier computed once per vocabulary and model, shared by every shard.

Encoding every prompt in every template (20 classes x 85 templates = 1785 sentences) costs
about 70 s of CPU per shard with ViT-B/16; the `clip_text` rule does it once and each
`clip_shard` job loads the result. The file is a safetensors archive whose metadata records
what it was computed from; a shard refuses a file made for another model, checkpoint,
prompt list or template set.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import UserError

log = logging.getLogger(__name__)


def provenance(loaded: Any, vocabulary: Any, template_list: list[str], seed: int = 0) -> dict[str, str]:
    """What a text classifier depends on (safetensors metadata: str -> str).

    ``seed`` matters only for randomly initialised models (it decides their weights).
    """
    from pipeline.clip.checkpoint import RANDOM_INIT

    return {
        "model": loaded.model_name,
        "model_config": json.dumps(loaded.model_config, sort_keys=True),
        "checkpoint_sha256": str(loaded.checkpoint_sha256),
        "random_init_seed": str(seed) if loaded.checkpoint_sha256 == RANDOM_INIT else "",
        "prompts": json.dumps(list(vocabulary.names)),
        "templates": json.dumps(list(template_list)),
    }


def save_text_classifier(path: str | Path, text, meta: Mapping[str, str]) -> Path:
    """Write ``text`` (n_prompts, D) float32 with ``meta`` atomically."""
    from safetensors.torch import save_file

    from pipeline.atomic import atomic_file

    with atomic_file(path) as tmp:
        save_file({"text": text.detach().float().cpu().contiguous()}, str(tmp), metadata=dict(meta))
    return Path(path)


def load_text_classifier(path: str | Path, expected: Mapping[str, str]):
    """Load a classifier written by :func:`save_text_classifier`; it must match ``expected``."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            text = handle.get_tensor("text")
    except FileNotFoundError:
        raise UserError(f"{path}: text classifier not found (run the clip_text rule / `python -m pipeline clip-text`)") from None
    except Exception as err:  # safetensors raises SafetensorError and others on damaged files
        raise UserError(f"{path}: cannot read text classifier ({err})") from None
    differs = sorted(key for key, value in expected.items() if meta.get(key) != value)
    if differs:
        raise UserError(f"{path}: text classifier was made for another {', '.join(differs)}; rerun clip_text")
    return text


def compute_text_classifier(options: Mapping[str, Any], out: str | Path) -> Path:
    """Load the CLIP model of ``options`` ({"clip", "vocabulary"}), encode the prompts, save them."""
    from pipeline.clip.checkpoint import load_clip
    from pipeline.clip.labeller import resolve_device
    from pipeline.clip.options import prompt_vocabulary_from, stage_options
    from pipeline.clip.text import templates, text_classifier

    opts = stage_options(options)
    clip = opts.clip
    if clip["backend"] != "open_clip":
        raise UserError(f"config key clip.backend: the {clip['backend']!r} backend has no text classifier")
    vocabulary = prompt_vocabulary_from(opts.vocabulary)
    loaded = load_clip(
        clip["model"], clip.get("checkpoint"), random_init=bool(clip.get("random_init")),
        model_config=clip.get("model_config"), activation=clip.get("activation", "auto"),
        mean=clip.get("mean"), std=clip.get("std"), seed=int(clip.get("seed", 0)),
    )
    device = resolve_device(clip.get("device", "auto"))
    template_list = templates(opts.vocabulary["templates"])
    text = text_classifier(
        loaded.model.to(device), loaded.tokenizer, vocabulary.names, template_list, device, int(clip.get("text_batch_size", 256))
    )
    log.info("encoded %d prompts x %d templates", len(vocabulary.names), len(template_list))
    return save_text_classifier(out, text, provenance(loaded, vocabulary, template_list, int(clip.get("seed", 0))))


def _run(args: argparse.Namespace) -> int:
    from pipeline.config import parse_options

    compute_text_classifier(parse_options(args.options), args.out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "clip-text",
        help="encode the prompt vocabulary once (the CLIP text classifier shared by every shard)",
        description=(
            "Encode every prompt name in every template with the CLIP text tower, average per prompt, and "
            "write the classifier (safetensors, with the model, checkpoint hash, prompts and templates in its "
            "metadata). `python -m pipeline clip --text <file>` then skips the text encoding."
        ),
    )
    parser.add_argument("--out", required=True, help="output .safetensors (<results>/clip/text_classifier.safetensors)")
    parser.add_argument("--options", default="{}", help='JSON {"clip": {...}, "vocabulary": {...}} (the two config sections)')
    parser.set_defaults(func=_run)

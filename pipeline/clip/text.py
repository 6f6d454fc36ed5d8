"""The text classifier: one L2-normalised embedding per prompt name, from a template ensemble.

For each prompt name every template is filled in, encoded by the CLIP text tower and
L2-normalised; the per-template embeddings are averaged and the mean normalised again
(the ensemble of CLIP's zero-shot ImageNet evaluation).

Template sets (``vocabulary.templates``):

* ``imagenet80``: the 80 ImageNet templates of CLIP's paper, as open_clip ships them.
* ``scene``: short templates for objects in a scene, in MaskCLIP's style.
"""

from __future__ import annotations

from typing import Any, Sequence

from pipeline.errors import UserError

SCENE_TEMPLATES: tuple[str, ...] = (
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)
"""Templates for objects and surfaces inside a scene (``{}`` is the prompt name)."""


def imagenet_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet prompt templates as format strings (``{}`` is the class name)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


TEMPLATE_SETS = ("imagenet80", "scene")


def templates(sets: Sequence[str]) -> list[str]:
    """The templates of the named sets, in order, without duplicates."""
    out: list[str] = []
    for name in sets:
        if name == "imagenet80":
            chosen: Sequence[str] = imagenet_templates()
        elif name == "scene":
            chosen = SCENE_TEMPLATES
        else:
            raise UserError(f"config key vocabulary.templates: unknown template set {name!r}; known: {list(TEMPLATE_SETS)}")
        out.extend(t for t in chosen if t not in out)
    if not out:
        raise UserError("config key vocabulary.templates: no templates selected")
    return out


def encode_text(model: Any, tokens):
    """``model.encode_text(tokens)`` (unnormalised, (N, D)), on the shortest context holding every EOT.

    CLIP's text tower is causal and pools at the end-of-text token (the largest token id), so
    positions after the longest sentence's EOT cannot change the result; dropping them makes
    prompt ensembles several times cheaper (sentences are ~15 of 77 tokens). Models of another
    kind (no causal mask, other pooling, custom text towers) use ``encode_text`` unchanged.
    """
    from open_clip.transformer import text_global_pool
    from torch import nn

    if (
        not hasattr(model, "token_embedding")
        or getattr(model, "attn_mask", None) is None
        or getattr(model, "text_pool_type", None) != "argmax"
    ):
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, "argmax")
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


def text_classifier(
    model: Any,
    tokenizer: Any,
    names: Sequence[str],
    template_list: Sequence[str],
    device: Any = "cpu",
    batch_size: int = 256,
):
    """Text embeddings of ``names`` → (n_names, D) float32, unit L2 norm per row.

    Each name is put in every template, encoded (batches of ``batch_size`` sentences),
    normalised, averaged over templates and normalised again. Runs in float32.
    """
    import torch
    import torch.nn.functional as F

    if not names:
        raise UserError("vocabulary: empty vocabulary (no prompt names to score)")
    sentences = [t.format(name) for name in names for t in template_list]
    chunks = []
    with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, enabled=False):
        for start in range(0, len(sentences), batch_size):
            tokens = tokenizer(sentences[start : start + batch_size]).to(device)
            chunks.append(F.normalize(encode_text(model, tokens).float(), dim=-1))
        per_template = torch.cat(chunks).reshape(len(names), len(template_list), -1)
        return F.normalize(per_template.mean(dim=1), dim=-1)

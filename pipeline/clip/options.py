"""The clip stage's options: the ``clip`` and ``vocabulary`` config sections, validated.

Rules pass both sections as one JSON object (``--options '{"clip": {...}, "vocabulary": {...}}'``);
they are validated against ``workflow/schemas/config.schema.yaml`` with its defaults filled,
so a hand-run command and a Snakemake job agree on every default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pipeline.config import ConfigError, config_hash, validate
from pipeline.errors import UserError

SECTIONS = ("clip", "vocabulary")


@dataclass(frozen=True)
class StageOptions:
    """Validated ``clip`` and ``vocabulary`` sections (plain dicts, defaults filled)."""

    clip: dict
    vocabulary: dict

    @property
    def hash(self) -> str:
        """16-hex-digit hash of both sections (recorded in the store metadata)."""
        return config_hash({"clip": self.clip, "vocabulary": self.vocabulary})

    def as_dict(self) -> dict:
        return {"clip": self.clip, "vocabulary": self.vocabulary}


def stage_options(options: Mapping[str, Any] | None) -> StageOptions:
    """Validate ``{"clip": {...}, "vocabulary": {...}}`` (either may be missing: defaults)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"--options: unexpected sections {unknown}; the clip stage takes {list(SECTIONS)}")
    full = validate({key: options[key] for key in SECTIONS if key in options})
    return StageOptions(clip=full["clip"], vocabulary=full["vocabulary"])


def prompt_vocabulary_from(vocabulary: Mapping[str, Any]):
    """The :class:`pipeline.vocab.PromptVocabulary` of a validated ``vocabulary`` section."""
    from pipeline.vocab import prompt_vocabulary

    try:
        return prompt_vocabulary(vocabulary["benchmark"], vocabulary.get("prompts"), vocabulary.get("extra_prompts"))
    except (KeyError, ValueError) as err:
        raise UserError(str(err).strip("'\"")) from None

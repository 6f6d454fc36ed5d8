"""Configuration: loading, validation against the schema, defaults and hashes.

Snakemake validates ``config.yaml`` with ``snakemake.utils.validate``; commands run by hand
call :func:`load_config`, which applies the same schema files and fills the same defaults.
Stage commands receive their section as JSON (``--options``) from the rules, so a rule's
result depends on exactly the options it was given.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.errors import UserError

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
"""Where the schemas live: package data (``workflow/schemas/`` links here for Snakemake)."""


class ConfigError(UserError):
    """The configuration does not match the schema; the message names the key."""


def schema_path(name: str = "config") -> Path:
    """Path of the packaged schema ``<name>.schema.yaml`` (``pipeline/schemas/``)."""
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: schema not found (the package was installed without its data files; reinstall it)")
    return path


def read_yaml(path: str | Path) -> Any:
    """Parse one YAML file; a syntax error is a :class:`ConfigError` naming ``file:line:column``."""
    import yaml

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        raise ConfigError(f"{where}: YAML syntax error: {problem}" + (f" ({context})" if context else "")) from None
    except (UnicodeDecodeError, OSError) as err:
        raise ConfigError(f"{path}: cannot read ({err})") from None



def _validator(schema_file: Path):
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    schema = read_yaml(schema_file)
    schema["$id"] = schema_file.resolve().as_uri()

    def retrieve(uri: str) -> Resource:
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        return Resource.from_contents(read_yaml(Path(url2pathname(urlparse(uri).path))))

    registry = Registry(retrieve=retrieve)
    base = Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    cls = validators.extend(base, {"properties": set_defaults})
    return cls(schema, registry=registry)


def key_path(error) -> str:
    """Dotted config key of a jsonschema error (``dataset.frame_skip``)."""
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def error_line(error) -> str:
    """One line for a jsonschema error: the dotted key and the problem, never the schema.

    An unknown key is named with its full path and the nearest allowed key (``config key
    dataset.frame_skp: unknown key; did you mean frame_skip?``).
    """
    import difflib

    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        if unknown:
            key = ".".join([*(str(p) for p in error.absolute_path), str(unknown[0])])
            near = difflib.get_close_matches(str(unknown[0]), allowed, n=1)
            hint = f"did you mean {near[0]}?" if near else f"allowed here: {', '.join(allowed)}"
            return f"config key {key}: unknown key; {hint} (pipeline/schemas/config.schema.yaml)"
    message = " ".join(error.message.split())
    return f"config key {key_path(error)}: {message[:300] + '...' if len(message) > 300 else message}"


def validate(config: Mapping[str, Any], schema: str = "config") -> dict[str, Any]:
    """Validate ``config`` (copied) against a schema and return it with defaults filled; for the
    main schema also the checks a schema cannot express (prompt class names, :func:`check_config`).

    Raises :class:`ConfigError` naming the offending key, in one line.
    """
    import jsonschema

    data = copy.deepcopy(dict(config))
    validator = _validator(schema_path(schema))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(error_line(jsonschema.exceptions.best_match(errors)))
    if schema == "config":
        check_config(data)
    return data


def check_config(config: Mapping[str, Any]) -> None:
    """Checks of a schema-valid config that need code: the prompt vocabulary must build (class
    names in ``vocabulary.prompts`` / ``extra_prompts`` known), so a typo fails when the DAG is
    built, not after ``prepare`` and ``sam`` ran. Raises :class:`ConfigError` naming the key."""
    from pipeline.vocab import prompt_vocabulary

    vocab = config.get("vocabulary", {})
    try:
        prompt_vocabulary(vocab.get("benchmark", "scannet20"), vocab.get("prompts"), vocab.get("extra_prompts"))
    except (KeyError, ValueError) as err:
        raise ConfigError(f"config key {str(err).strip(chr(34) + chr(39))}") from None


CLI_NESTED_HINT = (
    "Snakemake's --config parses values inside a mapping without types, so they arrive as strings: "
    "give nested settings in an overlay file instead, --configfile overlay.yaml (README, \"Changing settings\")"
)


def validate_workflow(config: Mapping[str, Any], cli_config: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`validate` for the Snakefile. ``cli_config``: what ``--config`` gave (Snakemake's
    ``workflow.config_settings.config``); when a type error hits a string value and ``--config``
    set a mapping, the message says how to override nested keys (an overlay file)."""
    try:
        return validate(config)
    except ConfigError as err:
        nested = any(isinstance(v, Mapping) for v in cli_config.values())
        if nested and "' is not of type" in str(err):
            raise ConfigError(f"{err}. {CLI_NESTED_HINT}") from None
        raise


REAL_BACKENDS: dict[str, str] = {"clip": "open_clip", "sam": "segment_anything"}
"""Section → the backend that loads a local checkpoint (``<section>.checkpoint``)."""


def check_paths(config: Mapping[str, Any], cwd: str | Path | None = None) -> None:
    """Files and folders a validated config names that must exist before any job runs: the CLIP
    and SAM checkpoints of the real backends (unless ``random_init``), and, unless the demo
    generates it, the dataset root with its ScanNet label map or nuScenes table folder. Relative
    paths are relative to ``cwd`` (default: the working directory), as the jobs read them.

    Called when the DAG is built, so a typo fails there even when older outputs exist (Snakemake
    would otherwise keep them). Raises :class:`ConfigError` naming the key and the path, in one line.
    """
    base = Path.cwd() if cwd is None else Path(cwd)
    where = f"relative to {base}"
    for section, backend in REAL_BACKENDS.items():
        options = config.get(section, {})
        if options.get("backend") != backend or options.get("random_init"):
            continue
        path = options.get("checkpoint")
        if not path:
            raise ConfigError(f"config key {section}.checkpoint: not set ({section}.backend {backend} loads local weights; "
                              f"or set {section}.random_init: true for random weights)")
        if not (base / path).is_file():
            raise ConfigError(f"config key {section}.checkpoint: {path} not found ({where}; weights are never downloaded)")
    dataset = config.get("dataset", {})
    if dataset.get("demo", {}).get("enabled"):
        return
    root = Path(dataset["root"])
    if not (base / root).is_dir():
        raise ConfigError(f"config key dataset.root: {root} not found ({where}; or dataset.demo.enabled: true for the generated demo)")
    key, inner = ("dataset.nuscenes.version", dataset["nuscenes"]["version"]) if dataset.get("kind") == "nuscenes" \
        else ("dataset.label_map", dataset["label_map"])
    if not (base / root / inner).exists():
        raise ConfigError(f"config key {key}: {root / inner} not found ({where})")


def load_config(
    path: str | Path | Sequence[str | Path] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read YAML config file(s), deep-merge them in order (as Snakemake merges ``--configfile``
    over ``config.yaml``) and then ``overrides``; validate and fill defaults."""
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    data: dict[str, Any] = {}
    for item in paths:
        item = Path(item)
        if not item.is_file():
            raise ConfigError(f"{item}: config file not found")
        loaded = read_yaml(item)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{item}: top level must be a mapping")
        data = deep_merge(data, loaded or {})
    if overrides:
        data = deep_merge(data, overrides)
    return validate(data)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins; lists are replaced, not merged."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) used for hashing and CLI options."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(value: Any) -> str:
    """16-hex-digit SHA-256 of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def parse_options(text: str | None, what: str = "--options") -> dict[str, Any]:
    """Parse a JSON object given on the command line; errors name the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: must be a JSON object")
    return value


def stage_config(text: str | None, what: str = "--options") -> dict[str, Any]:
    """The validated config (every default filled) from a stage command's ``--options``: a JSON
    object of the config keys its store depends on (:func:`pipeline.stores.stage_options`)."""
    return validate(parse_options(text, what))


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[2, 3]"]`` → ``{"a": {"b": 1}, "c": [2, 3]}`` (values parsed as YAML), for
    the command lines' ``--set KEY=VALUE``; an item without ``=`` is a :class:`ConfigError`."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out

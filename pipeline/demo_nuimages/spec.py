"""Names, defaults and tokens of the nuImages demo. Standard library only (the Snakefile imports
it when it builds the DAG).

The demo has ``logs`` logs (the last ``val`` of them form the val split); each log contributes
``samples_per_log`` samples, one key camera image each. Split ``train`` is written as the
version folder ``v1.0-train``, ``val`` as ``v1.0-val``, as nuImages ships them.
"""

from __future__ import annotations

import hashlib

VERSIONS: dict[str, str] = {"train": "v1.0-train", "val": "v1.0-val"}
"""Split → version folder the demo writes."""
DEFAULT_LOGS: int = 6
DEFAULT_VAL: int = 2
DEFAULT_SAMPLES: int = 4
DEFAULT_CAMERA_SIZE: tuple[int, int] = (400, 225)
"""Image size (W, H): a quarter of nuImages' 1600 x 900 per axis."""
DEFAULT_JPEG_QUALITY: int = 90


def log_names(logs: int, val: int) -> tuple[list[str], list[str]]:
    """(train, val) log names ``demo-log-00``, ...: the last ``val`` are validation logs.

    Raises ``ValueError`` unless ``1 <= logs <= 99`` and ``0 <= val < logs``.
    """
    if not 1 <= logs <= 99 or not 0 <= val < logs:
        raise ValueError(f"{logs} logs with {val} for validation: need 1 <= logs <= 99 and 0 <= val < logs")
    names = [f"demo-log-{i:02d}" for i in range(logs)]
    return names[: logs - val], names[logs - val:]


def token(seed: int, *parts: object) -> str:
    """A nuImages-style token (32 lowercase hex digits), a SHA-256 of the seed and ``parts``."""
    text = "/".join(["cns-demo-nuimages", str(int(seed))] + [str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sample_token(seed: int, log: str, index: int) -> str:
    """Token of sample ``index`` of ``log``."""
    return token(seed, "sample", log, index)


def samples(seed: int, logs: int, val: int, samples_per_log: int) -> dict[str, list[str]]:
    """``{split: [sample tokens]}`` of the demo (what the DAG shards), logs in order."""
    train, val_logs = log_names(logs, val)
    return {split: [sample_token(seed, log, k) for log in names for k in range(samples_per_log)]
            for split, names in (("train", train), ("val", val_logs))}

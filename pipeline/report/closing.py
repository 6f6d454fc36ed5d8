"""The closing lines of a workflow run: what the evaluations it wrote say, and where they are.

Snakemake's ``onsuccess`` handler (workflow/rules/report.smk) prints :func:`closing_message`, so a
run that ends in ``evaluate`` ends with its headline figures on the terminal, on the same class
set as the tables, and with the plumbing-run label when ``metrics.json`` carries one (written by
``python -m train evaluate``; this module only reads JSON).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROWS = (("3d", "pseudo3d_all", "3D network", "points"), ("2d", "pseudo2d_all", "2D network", "pixels"))
"""(network key, pseudo-label key on the same elements, name, unit) of the headline lines."""


def closing_message(results: str | Path, since: float) -> str:
    """The headline of every ``<results>/evaluate/<stage>/metrics.json`` written at or after
    ``since`` (epoch seconds): network vs pseudo-label mIoU (percent) per modality, the class
    count, the output folder, and the plumbing-run note (once); "" when none was written."""
    lines: list[str] = []
    notes: list[str] = []
    for path in sorted(Path(results).glob("evaluate/*/metrics.json")):
        if path.stat().st_mtime < since:
            continue
        try:
            metrics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        res = metrics.get("results", {})
        plumbing = " (plumbing run, see below)" if metrics.get("note") else ""
        lines.append(f"Evaluation of {path.parent.name}{plumbing}: {path.parent}/metrics.md, split {', '.join(metrics.get('splits', []))}")
        for net, pseudo, name, unit in ROWS:
            if net not in res:
                continue
            ref = f" vs pseudo-labels {100 * res[pseudo]['miou']:.1f}" if pseudo in res else ""
            lines.append(f"  {name} {100 * res[net]['miou']:.1f} mIoU{ref} (all {unit}; "
                         f"{res[net].get('classes_evaluated', '?')} classes present in ground truth)")
        if metrics.get("note"):
            notes.append(re.sub(r"[*`]", "", metrics["note"]))
    return "\n".join(lines + notes[:1])  # the first stage's note says it for all

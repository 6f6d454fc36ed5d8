"""One unattended run that measures every GPU goal and writes one JSON and one Markdown table.

    PYTHONPATH=. python bench/gpu_suite.py --out results/gpu_suite                # CUDA node (≤ 8 min, ≤ 70 GB)
    PYTHONPATH=. python bench/gpu_suite.py --device cpu --tiny --out results/gpu_suite_cpu   # anywhere, a couple of minutes

Sections (each under its own time budget and try/except: a failure is recorded in the JSON,
with its error, and the suite goes on with the next section):

* ``clip``: MaskCLIP labelling (full-size ViT-B-16-quickgelu, random weights, 640×480 views):
  views/s at batch 1/8/32, fp32 and bf16 autocast, and the bf16-vs-fp32 label agreement.
* ``sam``: SAM vit_h (random weights, full size): the official SamAutomaticMaskGenerator plus a
  separate SamPredictor.set_image, against our stage's per-view work (batched generator, masks,
  segment map, features) in fp32, and with a bf16 encoder and several views per encoder and
  decoder call; s/view, and our masks against the official ones (count, min matched IoU).
  Random weights give no mask a high predicted IoU, so the IoU threshold is the 95th percentile
  of the first view's predicted IoUs (about 150 masks per view, like real SAM indoors), the
  stability filter is off and box NMS keeps distinct boxes (1.0), as the parity tests do.
* ``project``: the projection's kernels on a ScanNet-size scene (bench/project.py's scene):
  OpenScene's own rule, our rule in OpenScene's per-view loop, the numpy CPU kernel and the torch
  kernel on the device (CUDA; ``torch-cpu`` with ``--device cpu``); ms/view, and ours identical
  to our rule in OpenScene's loop. Accuracy on mesh scenes: bench/project_mesh.py (CPU).
* ``train``: stage-1 steps/s and peak memory of the real trainer with DeepLabV3-R50 and
  MinkUNet34C (our torch sparse backend) at the 24 GB and 80 GB presets, bf16 AMP, on synthetic
  stores large enough to reach the presets' voxel budgets; where spconv imports, the same rows
  again on the spconv sparse backend (``net3d.backend: spconv``), else spconv recorded as not
  installed.

``--tiny`` swaps in tiny random models of the same architectures and small sizes (for CPU runs
and the test, tests/test_gpu_suite.py). GPU memory is capped at 70 GiB
(``torch.cuda.set_per_process_memory_fraction``), so an oversized section fails alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from gpu_suite_sections import SECTIONS, Context  # noqa: E402

BUDGETS = {"clip": 70, "sam": 150, "project": 80, "train": 160}
"""Seconds per section on a GPU (sum 460 s, under the 8 minutes with model builds and start-up)."""
MEMORY_CAP_GIB = 70.0


class SectionTimeout(Exception):
    """A section ran past its budget (raised by SIGALRM between Python bytecodes)."""


def _alarm(signum, frame):
    raise SectionTimeout("section ran past its time budget")


def machine(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "load_average_at_start": list(os.getloadavg()), "device": device}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def run_section(name: str, ctx: Context, budget: float) -> dict:
    """One section under its budget: its results, or ``status: failed`` with the error."""
    import torch

    start = time.perf_counter()
    ctx.deadline = start + budget
    ctx.partial = {}
    if ctx.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(budget) + 30)  # the hard stop; sections also check ctx.deadline themselves
    try:
        result = {"status": "ok", **SECTIONS[name](ctx)}
    except BaseException as err:  # noqa: BLE001 - recorded, never fatal to the suite (Ctrl-C excepted)
        if isinstance(err, KeyboardInterrupt):
            raise
        result = {**ctx.partial, "status": "failed", "error": f"{type(err).__name__}: {err}",
                  "traceback": traceback.format_exc().strip().splitlines()[-6:]}
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    result["seconds"] = round(time.perf_counter() - start, 3)  # 3 decimals: a fast section must not read 0.0
    result["budget_s"] = budget
    if ctx.cuda:
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(f"[gpu_suite] {name}: {result['status']} in {result['seconds']} s", flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models and sizes (CPU runs, the test)")
    parser.add_argument("--out", default="results/gpu_suite", help="folder for gpu_suite.json and gpu_suite.md")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every section's budget")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--work", default=None, help="scratch folder for synthetic stores and checkpoints (default: a temporary "
                        "folder, removed at the end; never under --out, whose files are the results)")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = None if args.work else tempfile.TemporaryDirectory(prefix="gpu-suite-")
    ctx = Context(device=args.device, tiny=args.tiny, work=Path(args.work or scratch.name))
    if ctx.cuda:
        total = torch.cuda.get_device_properties(args.device).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, MEMORY_CAP_GIB / total), args.device)
    started = time.perf_counter()
    report = {"suite": "bench/gpu_suite.py", "command": " ".join(["python", "bench/gpu_suite.py", *(argv or sys.argv[1:])]),
              "tiny": args.tiny, "machine": machine(args.device), "sections": {}}
    for name in args.sections:
        budget = BUDGETS[name] * args.budget_scale
        report["sections"][name] = run_section(name, ctx, budget)
        report["total_seconds"] = round(time.perf_counter() - started, 1)
        report["machine"]["load_average_at_end"] = list(os.getloadavg())
        (out / "gpu_suite.json").write_text(json.dumps(report, indent=2, default=str) + "\n")  # after each section
    if scratch is not None:
        scratch.cleanup()
    from gpu_suite_report import markdown

    (out / "gpu_suite.md").write_text(markdown(report))
    print((out / "gpu_suite.md").read_text())
    failed = [n for n, r in report["sections"].items() if r["status"] != "ok"]
    print(f"[gpu_suite] {len(args.sections) - len(failed)} of {len(args.sections)} sections ok"
          + (f"; failed: {failed}" if failed else "") + f"; {report['total_seconds']} s -> {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Markdown table of a bench/gpu_suite.py report (one table per section, failures included)."""

from __future__ import annotations


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join("–" if row.get(key, "") is None else str(row.get(key, "")) for _, key in columns) + " |")
    return lines


def _section(name: str, result: dict) -> list[str]:
    head = f"### {name}: {result['status']} ({result['seconds']} s of {result['budget_s']} s"
    head += f", peak GPU memory {result['peak_gpu_memory_gib']} GiB)" if "peak_gpu_memory_gib" in result else ")"
    lines = [head, ""]
    if result["status"] != "ok":
        lines += [f"Failed: `{result['error']}`", ""]
        rows = [r for r in result.get("rows", []) if isinstance(r, dict)]
        if rows:  # what the section measured before it failed, every field
            keys = sorted({k for r in rows for k in r})
            lines += ["Measured before the failure:", ""] + _table(rows, [(k, k) for k in keys])
        return lines + [""]
    if name == "clip":
        lines.append(f"{result['model']}, random weights, views {result['view_size'][0]}×{result['view_size'][1]}; "
                     f"text classifier {result['text_classifier_s']} s; bf16 vs fp32 label agreement "
                     f"**{100 * result['bf16_vs_fp32_label_agreement']:.2f} %** of pixels ({result['agreement_views']} views)")
        lines += [""] + _table(result["rows"], [("batch", "batch"), ("precision", "precision"), ("views", "views"),
                                                ("views/s", "views_per_s"), ("s/view", "s_per_view"), ("note", "skipped")])
    elif name == "sam":
        lines.append(f"{result['model']}, random weights, {result['views']} views {result['view_size'][0]}×{result['view_size'][1]}; "
                     f"amg {result['amg']} (IoU threshold: {result['pred_iou_thresh_rule']})")
        lines += [""] + _table(result["rows"], [("method", "method"), ("s/view", "s_per_view"), ("vs official", "speedup_vs_official"),
                                                ("masks per view", "masks_per_view"), ("counts equal", "counts_equal"),
                                                ("identical, in order", "identical_in_order"), ("min matched IoU", "min_matched_iou"),
                                                ("note", "skipped")])
    elif name == "project":
        lines.append(f"{result['points']} points, {result['views']} views, depth {result['depth_size'][0]}×{result['depth_size'][1]}; "
                     f"baseline: {result['baseline_doc']}; device kernel vs CPU kernel **{result['cuda_over_cpu_kernel']}×**")
        lines += [""] + _table(result["rows"], [("method", "method"), ("ms/view", "ms_per_view"), ("vs OpenScene's rule", "speedup_vs_openscene"),
                                                ("vs our rule in its loop", "speedup_vs_baseline"), ("pairs", "pairs"),
                                                ("identical to our rule in its loop", "identical_to_baseline"), ("runs", "runs")])
    elif name == "train":
        data, rows = result["rows"][0], result["rows"][1:]
        lines.append(f"synthetic stores: {data['samples']} samples × {data['points_per_sample']} points on a "
                     f"{data['floor_m'][0]}×{data['floor_m'][1]} m floor ({data['voxels_per_sample_5cm']} voxels of 5 cm each), "
                     f"built in {data['stores_build_s']} s; spconv: {result['spconv']}")
        lines += [""] + _table(rows, [("preset", "preset"), ("2D", "net2d"), ("3D", "net3d"), ("batch", "batch_size"),
                                      ("crop", "crop_size"), ("voxels/step (bound)", "voxels_per_step_bound"), ("bf16 AMP", "amp_bf16"),
                                      ("steps/s", "steps_per_s"), ("s/step", "s_per_step"), ("data wait", "data_wait_share"),
                                      ("peak GPU GiB", "peak_gpu_memory_gib"), ("note", "skipped")])
    return lines + [""]


def markdown(report: dict) -> str:
    m = report["machine"]
    where = m.get("gpu") and f"{m['gpu']} ({m['gpu_memory_gib']} GiB), CUDA {m.get('cuda')}" or f"CPU, {m['cpu_count']} cores"
    lines = [f"## GPU suite: {where}", "",
             f"`{report['command']}` — torch {m['torch']}, Python {m['python']}, {m['platform']}; "
             f"load average {m['load_average_at_start'][0]:.1f} → {m.get('load_average_at_end', [float('nan')])[0]:.1f}; "
             f"total {report.get('total_seconds')} s" + (" (**--tiny**: tiny models, small sizes)" if report["tiny"] else ""), ""]
    for name, result in report["sections"].items():
        lines += _section(name, result)
    return "\n".join(lines)

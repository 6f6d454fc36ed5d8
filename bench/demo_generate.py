"""Time the demo generator: seconds per scene at the default settings, and where they go.

Run: ``PYTHONPATH=. python bench/demo_generate.py [--scenes 3] [--views 12]``

Reports the wall and CPU time of ``generate_scene`` per scene (what the Snakemake rule runs; CPU
time is the steadier figure on a shared machine), then a
breakdown of one scene into scene building (room, cameras, mesh), colour rendering (ray casting
+ shading), depth rendering, visibility ground truth, and the rest (encoding and writing files),
each as a share of the total.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from pipeline.demo.generate import DemoOptions, build_scene, generate_scene
from pipeline.demo.render import render_color, render_depth
from pipeline.demo.visibility import visible_vertices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=3, help="scenes to generate")
    parser.add_argument("--views", type=int, default=12, help="views per scene")
    args = parser.parse_args()
    options = DemoOptions(views=args.views)
    names = [f"scene{i:04d}_00" for i in range(args.scenes)]
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start, start_cpu = time.perf_counter(), time.process_time()
            generate_scene(tmp, name, options)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            print(f"{name}: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU")
    print(f"generate_scene, {args.views} views, colour {options.color_size}, depth {options.depth_size}: "
          f"median {statistics.median(times):.2f} s wall per scene (min {min(times):.2f}, max {max(times):.2f}), "
          f"median {statistics.median(cpu):.2f} s CPU")

    name = names[0]
    parts = {}
    start = time.perf_counter()
    demo = build_scene(name, options)
    parts["build (room, cameras, mesh)"] = time.perf_counter() - start
    boxes, vertices = demo.room.boxes, demo.mesh.vertices.astype(np.float64)
    start = time.perf_counter()
    for pose in demo.poses:
        render_color(boxes, pose, demo.color_k, options.color_size)
    parts["colour, labels, instances"] = time.perf_counter() - start
    start = time.perf_counter()
    for pose in demo.poses:
        render_depth(boxes, pose, demo.depth_k, options.depth_size)
    parts["depth"] = time.perf_counter() - start
    start = time.perf_counter()
    for pose in demo.poses:
        visible_vertices(boxes, vertices, pose, demo.color_k, options.color_size)
    parts["visibility ground truth"] = time.perf_counter() - start
    total = times[0]
    parts["encoding + writing (rest)"] = max(total - sum(parts.values()), 0.0)
    print(f"breakdown of {name} ({len(boxes)} boxes, {vertices.shape[0]} vertices), total {total:.2f} s:")
    for key, value in parts.items():
        print(f"  {key:28s} {value:6.2f} s  {100 * value / total:5.1f} %")


if __name__ == "__main__":
    main()

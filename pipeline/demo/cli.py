"""``python -m pipeline demo-scene`` and ``python -m pipeline demo-meta``: the built-in demo dataset.

Heavy imports (numpy rendering, PIL, plyfile) happen inside the command functions so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from pipeline.demo import spec


def _run_scene(args: argparse.Namespace) -> int:
    from pipeline.demo.generate import DemoOptions, generate_scene

    options = DemoOptions(
        seed=args.seed, views=args.views, color_size=tuple(args.color_size), depth_size=tuple(args.depth_size),
        vertex_spacing=args.vertex_spacing, defects=args.defects, jpeg_quality=args.jpeg_quality,
    )
    generate_scene(args.out, args.scene, options)
    return 0


def _run_meta(args: argparse.Namespace) -> int:
    from pipeline.demo.generate import write_meta

    write_meta(args.out, args.train, args.val)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-scene`` and ``demo-meta`` commands."""
    p = subparsers.add_parser(
        "demo-scene",
        help="generate one procedural demo scene in the ScanNet v2 export format",
        description=(
            "Generate one procedural indoor room (walls, floor, ceiling, furniture and wall objects of "
            "ScanNet classes) and write it exactly as a ScanNet v2 export: <out>/scans/<scene>/ with "
            "color/N.jpg, depth/N.png (uint16 mm), pose/N.txt, intrinsic/*.txt, label-filt/N.png (raw "
            "category ids), instance-filt/N.png, <scene>_vh_clean_2.ply and .labels.ply (nyu40), plus "
            "_demo_gt/ (ground truth for tests: the vertices each view truly sees). The scene is a "
            "deterministic function of --seed and --scene. The directory appears only when complete."
        ),
    )
    p.add_argument("--out", required=True, help="dataset root; the scene goes to <out>/scans/<scene>/")
    p.add_argument("--scene", required=True, help="scene name, e.g. scene0003_00 (also seeds the geometry)")
    p.add_argument("--seed", type=int, default=0,
                   help="dataset seed; with the scene name it fixes everything (default: %(default)s)")
    p.add_argument("--views", type=int, default=spec.DEFAULT_VIEWS,
                   help="number of frames along the camera path (default: %(default)s)")
    p.add_argument("--color-size", type=int, nargs=2, metavar=("W", "H"), default=list(spec.DEFAULT_COLOR_SIZE),
                   help="colour image size in pixels (default: %(default)s; ScanNet: 1296 968)")
    p.add_argument("--depth-size", type=int, nargs=2, metavar=("W", "H"), default=list(spec.DEFAULT_DEPTH_SIZE),
                   help="depth image size in pixels (default: %(default)s; ScanNet: 640 480)")
    p.add_argument("--vertex-spacing", type=float, default=spec.DEFAULT_VERTEX_SPACING,
                   help="mesh grid spacing in metres; smaller gives more vertices (default: %(default)s)")
    p.add_argument("--defects", action="store_true",
                   help="inject real-world defects: 1-2 frames with -inf poses, one missing frame, "
                        "depth holes (0) in some depth images; needs --views >= 4")
    p.add_argument("--jpeg-quality", type=int, default=spec.DEFAULT_JPEG_QUALITY,
                   help="JPEG quality of color/N.jpg, 1-100 (default: %(default)s)")
    p.set_defaults(func=_run_scene)

    m = subparsers.add_parser(
        "demo-meta",
        help="write the demo dataset's label map and split lists",
        description=(
            "Write <out>/scannetv2-labels.combined.tsv (the demo's raw category ids → nyu40, with the "
            "real file's header) and <out>/scannetv2_train.txt / scannetv2_val.txt (one scene per "
            "line). Each file is written atomically."
        ),
    )
    m.add_argument("--out", required=True, help="dataset root")
    m.add_argument("--train", nargs="*", default=[], metavar="SCENE", help="training scene names")
    m.add_argument("--val", nargs="*", default=[], metavar="SCENE", help="validation scene names")
    m.set_defaults(func=_run_meta)

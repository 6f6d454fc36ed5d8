"""``python -m pipeline demo-nuscenes``: the procedural nuScenes-format demo dataset.

Heavy imports (numpy ray casting, PIL) happen inside the command function so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from pipeline.demo_nuscenes import spec


def _run(args: argparse.Namespace) -> int:
    from pipeline.demo_nuscenes.generate import NuScenesDemoOptions, generate_dataset

    options = NuScenesDemoOptions(
        scenes=args.scenes, val=args.val, seed=args.seed, samples_per_scene=args.samples_per_scene,
        camera_size=tuple(args.camera_size), lidar_beams=args.lidar_beams, lidar_azimuths=args.lidar_azimuths,
        defects=args.defects, jpeg_quality=args.jpeg_quality, workers=args.workers,
    )
    generate_dataset(args.out, options)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-nuscenes`` command."""
    p = subparsers.add_parser(
        "demo-nuscenes",
        help="generate a procedural demo dataset in the nuScenes v1.0 format (v1.0-mini, with lidarseg)",
        description=(
            "Generate procedural street scenes (road, sidewalks, terrain, parking strips, buildings, trees, "
            "vehicles, pedestrians, cyclists, barriers, cones; static, only the ego vehicle moves) and write "
            f"them exactly as nuScenes {spec.VERSION}: samples/LIDAR_TOP/*.pcd.bin (float32 x, y, z, "
            "intensity, ring; ray cast from the roof lidar at its timestamp), samples/CAM_*/*.jpg (six "
            "cameras ray cast at their own timestamps, 7-49 ms after the lidar's), lidarseg/"
            f"{spec.VERSION}/*_lidarseg.bin (uint8 fine class per point), maps/*.png and the 13 tables plus "
            f"lidarseg.json in {spec.VERSION}/. Scene names come from the official mini splits: the first "
            "SCENES - VAL of mini_train, then the first VAL of mini_val. Also writes demo_truth/ (ground truth "
            "for tests, outside the format: per sample, the lidar points each camera truly sees and per-pixel "
            "fine labels). Deterministic by --seed and scene name. OUT appears only when complete and is "
            "replaced as a whole."
        ),
    )
    p.add_argument("--out", required=True, help="dataset root to write (replaced if it exists)")
    p.add_argument("--scenes", type=int, default=spec.DEFAULT_SCENES,
                   help="number of scenes, training and validation together, at most 10 (default: %(default)s)")
    p.add_argument("--val", type=int, default=spec.DEFAULT_VAL,
                   help="how many of them are validation scenes (mini_val: 0-2) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; with each scene name it fixes everything (default: %(default)s)")
    p.add_argument("--samples-per-scene", type=int, default=spec.DEFAULT_SAMPLES,
                   help="lidar keyframes per scene, 0.5 s apart (2 Hz) (default: %(default)s)")
    p.add_argument("--camera-size", type=int, nargs=2, metavar=("W", "H"), default=list(spec.DEFAULT_CAMERA_SIZE),
                   help="camera image size; intrinsics are nuScenes' scaled from 1600 900 (default: %(default)s)")
    p.add_argument("--lidar-beams", type=int, default=spec.DEFAULT_BEAMS,
                   help="lidar beams over -30.67..+10.67 degrees elevation (nuScenes: 32) (default: %(default)s)")
    p.add_argument("--lidar-azimuths", type=int, default=spec.DEFAULT_AZIMUTHS,
                   help="lidar firings per beam and revolution (default: %(default)s)")
    p.add_argument("--defects", action="store_true",
                   help="inject real-world defects: one camera image file missing (its record kept) and one "
                        "camera calibrated_sensor quaternion not of unit norm (readers must normalise)")
    p.add_argument("--jpeg-quality", type=int, default=spec.DEFAULT_JPEG_QUALITY,
                   help="JPEG quality of the camera images, 1-100 (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes, scenes run in parallel; 0 = as many as usable CPUs and scenes "
                        "(default: %(default)s); the output does not depend on it")
    p.set_defaults(func=_run)

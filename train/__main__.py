"""``python -m train <command>``: the CNS co-trainer's command line (Snakemake rules call it).

Commands: ``stage1``, ``predict``, ``stage2``, ``evaluate``, ``ablation``. Several GPUs:
``torchrun --nproc-per-node N -m train stage1 ...`` (DDP; gloo on CPU). Configuration comes
from ``--config`` (a YAML file, validated like Snakemake validates it) and/or ``--options``
(JSON sections, as the rules pass them); ``--set key=value`` overrides single keys.
Heavy libraries are imported inside the commands, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys

# The trainer's numpy work is per item and small; OpenBLAS's own thread pool would only spin
# against torch's threads (set before numpy is first imported).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Idle OpenMP threads sleep instead of spinning: on a machine shared with other jobs (or two ranks
# on one node) spinning threads steal the cores the working ones need (measured: steps of 1 s took
# up to 29 s beside another training process on 2 cores). Set OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

STORE_ROLES_HELP = {
    "prepared": "prepared stores (<results>/prepared/<shard>.zarr), one per shard",
    "refined": "refine stores, one per shard (matched to the prepared stores by file name)",
    "points": "points stores (pseudo-labels carried to points, pixel<->point pairs), one per shard",
    "sam": "sam stores (segments, feature maps), one per shard",
    "clip": "clip stores (optional; only their vocabulary record is checked)",
    "predictions": "predictions stores of the stage-1 networks (stage 2, frozen targets)",
}


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", nargs="+", metavar="YAML",
                        help="YAML config file(s), merged in order like Snakemake's --configfile over config.yaml "
                        "(e.g. --config config.yaml workflow/configs/demo_learning.yaml); validated, defaults filled")
    parser.add_argument("--options", help="JSON object of config sections (what the Snakemake rules pass); wins over --config")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, dotted, value parsed as YAML (e.g. --set train.stage1.steps=100); repeatable",
    )


def _store_args(parser: argparse.ArgumentParser, roles: list[str], required: list[str]) -> None:
    for role in roles:
        parser.add_argument(f"--{role}", nargs="+", required=role in required, metavar="STORE", help=STORE_ROLES_HELP[role])


def _load(args: argparse.Namespace) -> dict:
    from pipeline.config import parse_overrides
    from train.config import load_options

    return load_options(args.config, args.options, parse_overrides(args.set))


def _stores(args: argparse.Namespace, roles: list[str]) -> dict[str, list[str]]:
    return {role: list(getattr(args, role)) for role in roles if getattr(args, role, None)}


def _cmd_stage(args: argparse.Namespace) -> int:
    from train.engine.trainer import run_stage

    config = _load(args)
    roles = ["prepared", "refined", "points", "sam", "clip", "predictions"]
    run_stage(config, args.command, _stores(args, roles), args.out, init=getattr(args, "init", None),
              stop_after=args.stop_after, progress=not args.no_progress)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from train.predict import predict_shard

    config = _load(args)
    train = config["train"]
    predict_shard(args.checkpoint, {"prepared": args.prepared, "sam": args.sam, "points": args.points}, args.out,
                  refine=train["predict"]["refine"], device=train["device"], threads=train["threads"])
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from train.evaluate import evaluate

    config = _load(args)
    ev, train = config["evaluate"], config["train"]
    metrics = evaluate(args.checkpoint, _stores(args, ["prepared", "refined", "points", "sam"]), args.out,
                       export_benchmark=ev["export_benchmark"], export_ply=ev["export_ply"], pseudo_labels=ev["pseudo_labels"],
                       device=train["device"], threads=train["threads"])
    res = metrics["results"]
    for key in ("3d", "2d"):
        if key in res:
            print(f"{key} mIoU {100 * res[key]['miou']:.1f}")
    return 0


def _cmd_ablation(args: argparse.Namespace) -> int:
    from train.ablation import run_ablation

    run_ablation(args.config, args.presets, args.results, args.out, seeds=args.seeds, overrides=args.set)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description=(
            "CNS co-trainer: a 2D DeepLabV3 and a 3D MinkUNet34 learn from the stores the pipeline wrote "
            "(SAM-refined pseudo-labels, pixel<->point pairs, SAM features). Normally run by Snakemake "
            "(targets train_stage1, train_stage2, evaluate); every command also runs by hand. Several GPUs: "
            "torchrun --nproc-per-node N -m train stage1 ..."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    all_roles = ["prepared", "refined", "points", "sam", "clip", "predictions"]

    s1 = sub.add_parser("stage1", help="train stage 1 (refined pseudo-labels, switching, latent consistency)",
                        description="Train both networks on the SAM-refined pseudo-labels of the given shards, with "
                        "prediction-consistency switching and latent consistency to SAM's features (train.stage1). "
                        "Resumes from the newest checkpoint in --out written with the same settings.")
    s1.add_argument("--out", required=True, help="run directory; final.pt appears there when the stage is done")
    _store_args(s1, all_roles[:-1], ["prepared", "refined", "points", "sam"])
    _config_args(s1)
    s1.add_argument("--stop-after", type=int, default=None, help="stop after the checkpoint of this step, as if killed (tests)")
    s1.add_argument("--no-progress", action="store_true", help="no progress bar")
    s1.set_defaults(func=_cmd_stage)

    s2 = sub.add_parser("stage2", help="train stage 2 (adds self- and cross-training), initialised from stage 1",
                        description="Train both networks from the stage-1 checkpoint (--init) with the stage-2 label sources "
                        "(train.stage2): refined pseudo-labels plus each network's own and the other network's "
                        "SAM-refined predictions, frozen (--predictions stores) or online.")
    s2.add_argument("--out", required=True, help="run directory; final.pt appears there when the stage is done")
    s2.add_argument("--init", required=True, help="stage-1 checkpoint (final.pt) the networks start from")
    _store_args(s2, all_roles, ["prepared", "refined", "points", "sam"])
    _config_args(s2)
    s2.add_argument("--stop-after", type=int, default=None, help="stop after the checkpoint of this step, as if killed (tests)")
    s2.add_argument("--no-progress", action="store_true", help="no progress bar")
    s2.set_defaults(func=_cmd_stage)

    pr = sub.add_parser("predict", help="write one shard's predictions store from a checkpoint",
                        description="Run both networks of a checkpoint over every view and point of one shard and write its "
                        "predictions store (2D and 3D predictions, refined by SAM segments, carried across modalities "
                        "through the pairs): the frozen targets of stage 2.")
    pr.add_argument("--checkpoint", required=True, help="checkpoint file (stage 1's final.pt)")
    pr.add_argument("--prepared", required=True, help="the shard's prepared store")
    pr.add_argument("--sam", required=True, help="the shard's sam store (segments)")
    pr.add_argument("--points", required=True, help="the shard's points store (pairs)")
    pr.add_argument("--out", required=True, help="output predictions store (<results>/predictions/<shard>.zarr)")
    _config_args(pr)
    pr.set_defaults(func=_cmd_predict)

    ev = sub.add_parser("evaluate", help="mIoU tables, confusion matrices and exports of a checkpoint",
                        description="Evaluate a checkpoint on the given shards: 3D mIoU on every original point, 2D mIoU on the "
                        "views with ground truth, per-class IoU, one confusion matrix per modality over the whole split, "
                        "the pipeline's pseudo-labels as reference rows, ScanNet benchmark files and coloured PLY meshes.")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file (the final one is what we report)")
    ev.add_argument("--out", required=True, help="output folder (metrics.json, metrics.md, confusion_*.json, benchmark/, ply/)")
    _store_args(ev, ["prepared", "refined", "points", "sam"], ["prepared"])
    _config_args(ev)
    ev.set_defaults(func=_cmd_evaluate)

    ab = sub.add_parser("ablation", help="run the ablation presets over several seeds and tabulate mean and spread",
                        description="For each preset (workflow/configs/ablation/*.yaml) and seed: stage 1, predict, stage 2 "
                        "when the preset enables it, evaluate; then one table (2D and 3D mIoU, mean and spread over seeds).")
    ab.add_argument("--config", nargs="+", metavar="YAML",
                    help="base YAML config file(s), merged in order "
                    "(e.g. --config config.yaml workflow/configs/demo_learning.yaml)")
    ab.add_argument("--presets", nargs="+", required=True, help="preset YAML files applied on top of the base config, one row each")
    ab.add_argument("--results", required=True, help="results folder holding the pipeline's stores (<results>/<stage>/<shard>.zarr)")
    ab.add_argument("--out", required=True, help="output folder (runs, table.md, table.json)")
    ab.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    ab.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key for every row")
    ab.set_defaults(func=_cmd_ablation)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.entry import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m train <command>``: the CNS co-trainer's command line (Snakemake rules call it).

Commands: ``stage1``, ``predict``, ``stage2``, ``evaluate``, ``ablation-table``. Several GPUs:
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

def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", nargs="+", metavar="YAML",
                        help="YAML config file(s), merged in order like Snakemake's --configfile over config.yaml "
                        "(e.g. --config config.yaml workflow/configs/demo_learning.yaml); validated, defaults filled")
    parser.add_argument("--options", help="JSON object of config sections (what the Snakemake rules pass); wins over --config")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, dotted, value parsed as YAML (e.g. --set train.stage1.steps=100); repeatable",
    )


def _store_args(parser: argparse.ArgumentParser, command: str, one: bool = False) -> None:
    """One ``--<store>`` option per store the command reads (the registry's list); with ``--results``
    (not for ``predict``) every store is found on disk and these options only override."""
    from pipeline.stores import required_trainer_stores, store_spec, trainer_stores

    required = required_trainer_stores(command, image_only=True)  # points: checked by the command (not for image-only data)
    for name in trainer_stores(command):
        spec = store_spec(name)
        where = f"<results>/{name}/<shard>.zarr"
        help_ = f"{spec.doc} ({where}, written by the {spec.stage} stage)" + ("" if one else "; one per shard, matched by file name")
        if name not in required:
            help_ += "; optional" + {"predictions": " (needed when stage 2 has frozen self/cross sources)",
                                     "points": " for image-only datasets (nuImages), required otherwise"}.get(name, "")
        elif not one:
            help_ += "; required unless --results finds them"
        parser.add_argument(f"--{name}", nargs=None if one else "+", required=one and name in required, metavar="STORE", help=help_)
    if not one:
        parser.add_argument("--results", metavar="DIR",
                            help="the config's results folder: find every store as DIR/<store>/<split>-NNN.zarr for --splits "
                            "(a --<store> option given wins for that store)")
        parser.add_argument("--splits", nargs="+", metavar="SPLIT",
                            help="splits whose shards --results finds (default: the config's "
                            + ("evaluate.splits)" if command == "evaluate" else "train.splits)"))


def _resume_args(parser: argparse.ArgumentParser) -> None:
    """``--resume`` / ``--no-resume`` (default: resume when the newest checkpoint has these settings)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="resume", action="store_const", const="resume", default="auto",
                       help="continue from the newest checkpoint in --out; stop with an error if it has other settings or there is none")
    group.add_argument("--no-resume", dest="resume", action="store_const", const="fresh",
                       help="start afresh; the previous run's checkpoints, log and TensorBoard folder move to --out/previous/run-<k>/ "
                       "(default without either flag: resume when the newest checkpoint has these settings, else start afresh the same way)")


def _load(args: argparse.Namespace) -> dict:
    from pipeline.config import parse_overrides
    from train.config import load_options

    return load_options(args.config, args.options, parse_overrides(args.set))


def _stores(args: argparse.Namespace, command: str, config: dict | None = None) -> dict:
    """``{store: path(s)}``: those found under ``--results`` for ``--splits`` (or the config's), then
    the ``--<store>`` options given; a one-line error when a required store is in neither."""
    from pipeline.errors import UserError
    from pipeline.stores import required_trainer_stores, trainer_stores

    train = config["train"] if config else None
    names = trainer_stores(command, train)
    required = required_trainer_stores(command, train, image_only=True)
    found: dict = {}
    if getattr(args, "results", None):
        from pipeline.stores.discover import discover_stores

        splits = args.splits or (config["evaluate"]["splits"] if command == "evaluate" else config["train"]["splits"])
        found = discover_stores(args.results, names, required, splits)
    given = {name: getattr(args, name) for name in trainer_stores(command) if getattr(args, name, None)}
    stores = {**found, **given}
    missing = [f"--{name}" for name in required if name not in stores]
    if missing:
        raise UserError(f"python -m train {command}: {' '.join(missing)} required (or --results <results folder>)")
    return stores


def _default_paths(args: argparse.Namespace) -> None:
    """``--out`` (and stage 2's ``--init``) under ``--results`` when not given."""
    from pathlib import Path

    from pipeline.errors import UserError

    results = getattr(args, "results", None)
    if args.out is None:
        if not results:
            raise UserError(f"python -m train {args.command}: --out required (or --results <results folder>)")
        args.out = str(Path(results) / ("evaluate" if args.command == "evaluate" else "train") / (
            Path(args.checkpoint).parent.name if args.command == "evaluate" else args.command))
    if args.command == "stage2" and args.init is None:
        if not results:
            raise UserError("python -m train stage2: --init required (or --results <results folder>)")
        args.init = str(Path(results) / "train" / "stage1" / "final.pt")


def _cmd_stage(args: argparse.Namespace) -> int:
    from train.engine.trainer import run_stage

    config = _load(args)
    _default_paths(args)
    run_stage(config, args.command, _stores(args, args.command, config), args.out, init=getattr(args, "init", None),
              stop_after=args.stop_after, progress=not args.no_progress, resume_mode=args.resume)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from train.predict import predict_shard

    config = _load(args)
    predict_shard(args.checkpoint, _stores(args, "predict", config), args.out, config)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from train.evaluate import evaluate

    config = _load(args)
    _default_paths(args)
    ev, train = config["evaluate"], config["train"]
    metrics = evaluate(args.checkpoint, _stores(args, "evaluate", config), args.out,
                       export_benchmark=ev["export_benchmark"], export_ply=ev["export_ply"], pseudo_labels=ev["pseudo_labels"],
                       export_lidarseg=ev["export_lidarseg"], plumbing_below_steps=ev["plumbing_below_steps"],
                       export_png=ev["export_png"], ply_variants=ev["ply_variants"],
                       figure_views=ev["figure_views"], figure_scenes=ev["figure_scenes"],
                       device=train["device"], threads=train["threads"])
    res = metrics["results"]
    for key in ("3d", "2d"):
        if key in res:
            print(f"{key} mIoU {100 * res[key]['miou']:.1f} (over the {res[key]['classes_evaluated']} classes present in ground truth)")
    if "miou_official" in res.get("3d", {}):
        print(f"3d mIoU (nuScenes lidarseg evaluator's rule) {100 * res['3d']['miou_official']:.1f}")
    if metrics["note"]:
        print(metrics["note"].replace("**", "").replace("`", ""))
    return 0


def _cmd_ablation_table(args: argparse.Namespace) -> int:
    from train.ablation import write_table

    import json

    try:
        comparisons = json.loads(args.comparisons) if args.comparisons else []
    except ValueError as err:
        raise SystemExit(f"--comparisons: not JSON ({err})") from None
    write_table(args.runs, args.presets, args.markdown, args.json, comparisons)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pipeline.entry import program_name

    parser = argparse.ArgumentParser(
        prog=program_name("train", "cns-train"),
        description=(
            "CNS co-trainer: a 2D DeepLabV3 and a 3D MinkUNet34 learn from the stores the pipeline wrote "
            "(SAM-refined pseudo-labels, pixel<->point pairs, SAM features). Normally run by Snakemake "
            "(targets train_stage1, train_stage2, evaluate); every command also runs by hand. Several GPUs: "
            "torchrun --nproc-per-node N -m train stage1 ..."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s1 = sub.add_parser("stage1", help="train stage 1 (refined pseudo-labels, switching, latent consistency)",
                        description="Train both networks on the SAM-refined pseudo-labels of the given shards, with "
                        "prediction-consistency switching and latent consistency to SAM's features (train.stage1). "
                        "Resumes from the newest checkpoint in --out written with the same settings (--resume / --no-resume to choose).")
    s1.add_argument("--out", help="run directory; final.pt appears there when the stage is done (default: <results>/train/stage1)")
    _store_args(s1, "stage1")
    _config_args(s1)
    s1.add_argument("--stop-after", type=int, default=None, help="stop after the checkpoint of this step, as if killed (tests)")
    s1.add_argument("--no-progress", action="store_true", help="no progress bar")
    _resume_args(s1)
    s1.set_defaults(func=_cmd_stage)

    s2 = sub.add_parser("stage2", help="train stage 2 (adds self- and cross-training), initialised from stage 1",
                        description="Train both networks from the stage-1 checkpoint (--init) with the stage-2 label sources "
                        "(train.stage2): refined pseudo-labels plus each network's own and the other network's "
                        "SAM-refined predictions, frozen (--predictions stores) or online.")
    s2.add_argument("--out", help="run directory; final.pt appears there when the stage is done (default: <results>/train/stage2)")
    s2.add_argument("--init", help="stage-1 checkpoint (final.pt) the networks start from (default: <results>/train/stage1/final.pt)")
    _store_args(s2, "stage2")
    _config_args(s2)
    s2.add_argument("--stop-after", type=int, default=None, help="stop after the checkpoint of this step, as if killed (tests)")
    s2.add_argument("--no-progress", action="store_true", help="no progress bar")
    _resume_args(s2)
    s2.set_defaults(func=_cmd_stage)

    pr = sub.add_parser("predict", help="write one shard's predictions store from a checkpoint",
                        description="Run both networks of a checkpoint over every view and point of one shard and write its "
                        "predictions store (2D and 3D predictions, refined by SAM segments, carried across modalities "
                        "through the pairs): the frozen targets of stage 2.")
    pr.add_argument("--checkpoint", required=True, help="checkpoint file (stage 1's final.pt)")
    _store_args(pr, "predict", one=True)
    pr.add_argument("--out", required=True, help="output predictions store (<results>/predictions/<shard>.zarr)")
    _config_args(pr)
    pr.set_defaults(func=_cmd_predict)

    ev = sub.add_parser("evaluate", help="mIoU tables, confusion matrices and exports of a checkpoint",
                        description="Evaluate a checkpoint on the given shards: 3D mIoU on every original point, 2D mIoU on the "
                        "views with ground truth, per-class IoU, one confusion matrix per modality over the whole split, "
                        "the pipeline's pseudo-labels as reference rows, ScanNet benchmark files and coloured PLY meshes, or "
                        "for nuScenes the official lidarseg submission (lidarseg/<split>/<token>_lidarseg.bin, <split>/submission.json).")
    ev.add_argument("--checkpoint", required=True, help="checkpoint file (the final one is what we report)")
    ev.add_argument("--out", help="output folder (metrics.json, metrics.md, confusion_*.json, benchmark/, ply/); default: "
                    "<results>/evaluate/<the checkpoint's folder name>")
    _store_args(ev, "evaluate")
    _config_args(ev)
    ev.set_defaults(func=_cmd_evaluate)

    ab = sub.add_parser("ablation-table", help="tabulate ablation runs: mean, spread and range over seeds per row",
                        description="Build the ablation table from evaluated runs (what `snakemake ablation` runs; see "
                        "workflow/rules/ablation.smk): per row, 2D and 3D mIoU of the final checkpoints as mean ± sample "
                        "standard deviation and min-max over seeds, and the pipeline's pseudo-labels as reference.")
    ab.add_argument("--runs", nargs="+", required=True, metavar="ROW:SEED:DIR",
                    help="evaluated runs: row name, seed and the evaluate output folder (holding metrics.json)")
    ab.add_argument("--presets", nargs="*", default=[], metavar="ROW:FILE", help="the preset file of each row (recorded)")
    ab.add_argument("--comparisons", default="", metavar="JSON",
                    help='paired differences to report: a JSON list of {"component", "row", "baseline"} (ablation.comparisons)')
    ab.add_argument("--markdown", required=True, help="output table.md")
    ab.add_argument("--json", required=True, help="output table.json")
    ab.set_defaults(func=_cmd_ablation_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.entry import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())

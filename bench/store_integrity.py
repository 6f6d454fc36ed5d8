"""Measure what the store integrity checks cost: reading every array of demo stores.

Builds demo stores (demo scenes, ``prepare``, simulated ``clip`` and ``sam``), then reads every
array of every sample, whole, in one process, alternating three ways per round:

* ``zarr, no CRC``: plain zarr on a copy of each store without the per-chunk CRC-32C (the layout
  before the integrity checks): the baseline;
* ``zarr``: plain zarr on the store as written (per-chunk CRC-32C; no reader checks);
* ``StoreReader``: a fresh reader per round (every array opened and checked: chunk files present,
  shape against the sample's sizes, decode errors turned into damage).

Prints the median seconds per round and the overhead against the baseline, and the time to write
the copies with and without the CRC.

    PYTHONPATH=. python bench/store_integrity.py [--scenes 2] [--views 12] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(root: Path, scenes: int, views: int, working: tuple[int, int]) -> dict[str, Path]:
    """Demo prepared, clip and sam stores of one shard under ``root``."""
    from pipeline.clip.stage import run_clip_stage
    from pipeline.demo.generate import DemoOptions, generate_scene, write_meta
    from pipeline.prepare import prepare_shard
    from pipeline.sam.stage import run_sam_stage
    from tests.refine_fixtures import dataset_options

    names = [f"scene{i:04d}_00" for i in range(scenes)]
    for i, scene in enumerate(names):
        generate_scene(root / "data", scene, DemoOptions(seed=i, views=views))
    write_meta(root / "data", names, [])
    prepared = prepare_shard(dataset_options(root / "data", working), "train-000", "train", names, root / "prepared.zarr", threads=2)
    clip = run_clip_stage(prepared, root / "clip.zarr", {"clip": {"backend": "simulated"}})
    sam = run_sam_stage(prepared, root / "sam.zarr", {"backend": "simulated"})
    return {"prepared": Path(prepared), "clip": Path(clip), "sam": Path(sam)}


def arrays_of(path: Path) -> list[str]:
    """Keys of every array of a store (sample and store-level)."""
    import zarr

    return sorted(_walk(zarr.open_group(str(path), mode="r", zarr_format=3), ""))


def _walk(group, prefix: str):
    for key, _ in group.arrays():
        yield f"{prefix}{key}"
    for key, sub in group.groups():
        yield from _walk(sub, f"{prefix}{key}/")


def copy_without_crc(src: Path, dst: Path, crc: bool) -> float:
    """Rewrite ``src`` at ``dst`` with plain zarr, the same chunking and compressor, with or without
    the per-chunk CRC-32C; returns the seconds spent writing."""
    import zarr
    from zarr.codecs import Crc32cCodec

    source = zarr.open_group(str(src), mode="r", zarr_format=3)
    out = zarr.open_group(str(dst), mode="w", zarr_format=3)
    out.attrs.update(dict(source.attrs))
    spent = 0.0
    for key in arrays_of(src):
        arr = source[key]
        data = arr[...]
        compressors = [c for c in arr.compressors if not isinstance(c, Crc32cCodec)] + ([Crc32cCodec()] if crc else [])
        kwargs = {"chunks": arr.chunks, "shards": arr.shards} if arr.shards else {"chunks": arr.chunks}
        start = time.perf_counter()
        new = out.create_array(name=key, shape=arr.shape, dtype=arr.dtype, fill_value=0, compressors=compressors,
                               config={"write_empty_chunks": True}, **kwargs)
        if data.size:
            new[...] = data
        spent += time.perf_counter() - start
    return spent


def read_zarr(path: Path, keys: list[str]) -> int:
    import zarr

    root = zarr.open_group(str(path), mode="r", zarr_format=3)
    return sum(np.asarray(root[key][...]).nbytes for key in keys)


def read_checked(path: Path) -> int:
    from pipeline.stores import StoreReader

    reader = StoreReader(path)
    total = sum(reader.read_store_array(s.path).nbytes for s in reader.spec.store_arrays if reader.has_store_array(s.path))
    for sample in reader.samples:
        for spec in reader.spec.arrays:
            if reader.has(sample, spec.path):
                total += reader.read(sample, spec.path).nbytes
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=2)
    parser.add_argument("--views", type=int, default=12)
    parser.add_argument("--working-size", type=int, nargs=2, default=(320, 240))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stores = build(root, args.scenes, args.views, tuple(args.working_size))
        print(f"demo: {args.scenes} scenes x {args.views} views at {args.working_size[0]}x{args.working_size[1]}")
        print("\n| store | arrays | MB decoded | zarr, no CRC (s) | zarr (s) | StoreReader (s) | overhead vs baseline | of which checks, per array (ms) | write no CRC / CRC (s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, path in stores.items():
            keys = arrays_of(path)
            plain = root / f"{name}-nocrc.zarr"
            w0 = copy_without_crc(path, plain, crc=False)
            w1 = copy_without_crc(path, root / f"{name}-crc.zarr", crc=True)
            times: dict[str, list[float]] = {"base": [], "zarr": [], "checked": []}
            nbytes = 0
            for _ in range(args.rounds):
                for label, run in (("base", lambda: read_zarr(plain, keys)), ("zarr", lambda: read_zarr(path, keys)),
                                   ("checked", lambda: read_checked(path))):
                    start = time.perf_counter()
                    nbytes = run()
                    times[label].append(time.perf_counter() - start)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"| {name} | {len(keys)} | {nbytes / 1e6:.1f} | {med['base']:.3f} | {med['zarr']:.3f} | {med['checked']:.3f} | "
                  f"{100 * (med['checked'] / med['base'] - 1):+.0f} % | {1000 * (med['checked'] - med['zarr']) / len(keys):+.2f} | {w0:.2f} / {w1:.2f} |")


if __name__ == "__main__":
    main()

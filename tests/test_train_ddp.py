"""DDP on CPU: two gloo processes train in step, on different samples, with identical weights.

(Batch-norm running statistics are per process, as in plain DDP; parameters must be equal.)
"""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.test_train_engine import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, stores: dict, run_dir: str) -> None:
    import json
    from pathlib import Path

    from pipeline.config import validate
    from train.engine import trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    seen = []
    from train.engine import hooks

    original = hooks.save_state

    def save_every_rank(path, state, meta):
        original(path, state, meta)
        if path.name == "final.pt":
            torch.save({k: v.detach().clone() for k, v in state.model.named_parameters()}, Path(run_dir) / f"rank{rank}.pt")

    hooks.save_state = save_every_rank

    def record(step, rec):
        seen.append(step)

    config = validate({"train": {**TINY, "stage1": {"steps": 2}, "checkpoint_every": 10}})
    import train.data.batch as batch

    original_collate = batch.collate
    ids = []

    def spy(items):
        ids.extend(it.sample_id for it in items)
        return original_collate(items)

    batch.collate = spy
    try:
        trainer.run_stage(config, "stage1", stores, run_dir, progress=False, on_step=record)
    finally:
        batch.collate = original_collate
        hooks.save_state = original
    Path(run_dir, f"ids{rank}.json").write_text(json.dumps({"steps": seen, "ids": ids}))


@pytest.mark.timeout(300)
def test_two_gloo_processes_stay_in_sync(tmp_path):
    import json

    from tests.train_synthetic import make_stores

    stores = make_stores(tmp_path / "stores", samples_per_shard=(2, 2), n_points=200, n_views=3)["stores"]
    run_dir = str(tmp_path / "run")
    mp.spawn(_worker, args=(2, _free_port(), stores, run_dir), nprocs=2, join=True)
    a = torch.load(tmp_path / "run" / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "rank1.pt", weights_only=True)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    logs = [json.loads((tmp_path / "run" / f"ids{r}.json").read_text()) for r in (0, 1)]
    assert logs[0]["steps"] == logs[1]["steps"] == [1, 2]
    assert len(logs[0]["ids"]) == len(logs[1]["ids"]) == 2
    assert set(logs[0]["ids"]).isdisjoint(logs[1]["ids"])  # 4 samples, batch 1 x 2 steps x 2 ranks: each seen once
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["world_size"] == 2 and (tmp_path / "run" / "final.pt").is_file()

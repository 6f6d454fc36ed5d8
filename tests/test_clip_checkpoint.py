"""Checkpoint loading: local files only, weights-only, clear errors naming the file."""

import pickle
from pathlib import Path

import pytest
import torch

from pipeline.clip.checkpoint import RANDOM_INIT, load_clip, read_state_dict
from pipeline.provenance import file_sha256
from pipeline.errors import InputFileError, UserError
from tests.clip_helpers import TINY_CONFIG, tiny_clip, tiny_config


class _Payload:
    """Unpickling this calls Path.write_text(marker, ...): a pickle that runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def _weights(seed=0, **vision):
    return tiny_clip(seed=seed, **vision).model.state_dict()


def test_state_dict_and_safetensors_round_trip(tmp_path):
    from safetensors.torch import save_file

    state = _weights(seed=5)
    pt = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, pt)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    for path in (pt, st):
        loaded = load_clip("tiny", path, model_config=TINY_CONFIG)
        assert loaded.checkpoint_sha256 == file_sha256(path) != RANDOM_INIT
        for key, value in loaded.model.state_dict().items():
            torch.testing.assert_close(value, state[key])
        assert loaded.activation == "quick_gelu"
        assert loaded.native_size == (64, 64) and loaded.patch_size == (16, 16)


def test_random_init_only_when_asked(caplog):
    with pytest.raises(UserError, match="clip.checkpoint"):
        load_clip("tiny", None, model_config=TINY_CONFIG)
    with caplog.at_level("WARNING"):
        loaded = load_clip("tiny", None, random_init=True, model_config=TINY_CONFIG)
    assert loaded.checkpoint_sha256 == RANDOM_INIT
    assert "RANDOMLY INITIALISED" in caplog.text
    with pytest.raises(UserError, match="not both"):
        load_clip("tiny", "x.pt", random_init=True, model_config=TINY_CONFIG)


def test_builtin_names_and_activation():
    with pytest.raises(UserError, match="clip.model: unknown open_clip model"):
        load_clip("ViT-Nope", None, random_init=True)
    _, quick = __import__("pipeline.clip.checkpoint", fromlist=["x"]).resolve_model_config("ViT-B-16-quickgelu")
    _, plain = __import__("pipeline.clip.checkpoint", fromlist=["x"]).resolve_model_config("ViT-B-16")
    assert quick and not plain
    loaded = load_clip("tiny", None, random_init=True, model_config=TINY_CONFIG, activation="gelu")
    assert loaded.activation == "gelu"
    assert type(loaded.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"


def test_missing_checkpoint(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(InputFileError, match="nope.pt: checkpoint not found"):
        load_clip("tiny", path, model_config=TINY_CONFIG)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_checkpoint(tmp_path, suffix):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in _weights().items()}
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=f"w{suffix}: unreadable or truncated"):
        load_clip("tiny", path, model_config=TINY_CONFIG)
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(InputFileError, match=f"w{suffix}: unreadable or truncated"):
        load_clip("tiny", path, model_config=TINY_CONFIG)


def test_wrong_architecture(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(_weights(layers=3), path)  # one block more than the model
    with pytest.raises(InputFileError, match=r"other.pt: weights do not fit model .*unexpected .*resblocks.2"):
        load_clip("tiny", path, model_config=TINY_CONFIG)
    torch.save(_weights(image_size=96), path)  # positional embedding of another size
    with pytest.raises(InputFileError, match=r"shape mismatches \(visual.positional_embedding: checkpoint \(37, 64\) vs model \(17, 64\)"):
        load_clip("tiny", path, model_config=TINY_CONFIG)


def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"visual.proj": torch.zeros(1), "x": _Payload(marker)}, path)
    # the payload is live: an unsafe load would run it (checked in another place)
    live = tmp_path / "live.txt"
    pickle.loads(pickle.dumps(_Payload(live)))
    assert live.read_text() == "code ran"
    with pytest.raises(InputFileError, match=r"evil.pt: refused to load: .*could run code.*nothing was executed"):
        load_clip("tiny", path, model_config=TINY_CONFIG)
    assert not marker.exists()
    with pytest.raises(InputFileError, match="evil.pt"):
        read_state_dict(path)
    assert not marker.exists()


def test_torchscript_archive_points_to_conversion(tmp_path):
    import warnings

    path = tmp_path / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(InputFileError, match=r"ViT-tiny.pt: this is a TorchScript archive.*clip-convert"):
        load_clip("tiny", path, model_config=TINY_CONFIG)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(InputFileError, match="list.pt: expected a non-empty state dict"):
        load_clip("tiny", path, model_config=TINY_CONFIG)


def test_unsupported_towers_are_named():
    cfg = tiny_config()
    cfg["vision_cfg"]["timm_model_name"] = "vit_base_patch16_224"
    with pytest.raises(UserError, match="clip.model_config: timm image towers"):
        load_clip("tiny", None, random_init=True, model_config=cfg)

"""Loading SAM checkpoints: weights_only, strict architecture, errors that name the file."""

import os
import pickle

import pytest
import torch

from pipeline.errors import InputFileError, UserError
from pipeline.provenance import file_sha256
from pipeline.sam.model import CheckpointError, build_sam, load_sam

TINY = {"image_size": 256}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    model = build_sam("tiny", TINY)
    path = tmp_path_factory.mktemp("ckpt") / "sam_tiny.pth"
    torch.save(model.state_dict(), path)
    return path, model


class _Payload:
    """An object whose unpickling would run code (creating a directory; a stand-in for malice)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_round_trip_and_hash(tiny_checkpoint):
    path, model = tiny_checkpoint
    loaded = load_sam("tiny", path, tiny=TINY)
    assert loaded.weights == f"sha256:{file_sha256(path)}" and loaded.checkpoint == str(path)
    for (name, a), b in zip(model.state_dict().items(), loaded.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert loaded.long_side == 256 and loaded.patch == 16 and not loaded.model.training


def test_safetensors_and_wrapped_state_dicts(tiny_checkpoint, tmp_path):
    from safetensors.torch import save_file

    path, model = tiny_checkpoint
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "sam_tiny.safetensors")
    loaded = load_sam("tiny", tmp_path / "sam_tiny.safetensors", tiny=TINY)
    torch.testing.assert_close(loaded.model.mask_decoder.iou_token.weight, model.mask_decoder.iou_token.weight)
    torch.save({"model": state}, tmp_path / "wrapped.pth")
    load_sam("tiny", tmp_path / "wrapped.pth", tiny=TINY)


def test_random_init_is_explicit_and_reproducible(caplog):
    with pytest.raises(UserError, match="sam.checkpoint"):
        load_sam("tiny", None, tiny=TINY)
    with caplog.at_level("WARNING"):
        a = load_sam("tiny", None, random_init=True, seed=1, tiny=TINY)
    assert a.weights == "random-init" and "RANDOM weights" in caplog.text
    b = load_sam("tiny", None, random_init=True, seed=1, tiny=TINY)
    torch.testing.assert_close(a.model.image_encoder.patch_embed.proj.weight, b.model.image_encoder.patch_embed.proj.weight)


def test_checkpoint_and_random_init_together_is_an_error(tiny_checkpoint):
    with pytest.raises(UserError, match="not both"):
        load_sam("tiny", tiny_checkpoint[0], random_init=True, tiny=TINY)


def test_missing_checkpoint_names_the_file(tmp_path):
    missing = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(InputFileError, match="sam_vit_h_4b8939.pth: SAM checkpoint not found"):
        load_sam("vit_h", missing)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_corrupt_checkpoint_names_the_file(tiny_checkpoint, tmp_path, kind):
    path = tmp_path / f"{kind}.pth"
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint\n" * 10)
    elif kind == "truncated":
        data = tiny_checkpoint[0].read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_sam("tiny", path, tiny=TINY)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused") as err:
        load_sam("tiny", path, tiny=TINY)
    assert str(path) in str(err.value) and not marker.exists()
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(CheckpointError, match="refused|not a PyTorch checkpoint"):
        load_sam("tiny", plain, tiny=TINY)
    assert not marker.exists()


def test_wrong_architecture_names_the_file_and_the_guess(tiny_checkpoint, tmp_path):
    path, _ = tiny_checkpoint
    with pytest.raises(CheckpointError, match="does not match SAM tiny") as err:
        load_sam("tiny", path, tiny={**TINY, "embed_dim": 48})
    assert str(path) in str(err.value) and "wrong shape" in str(err.value)
    with pytest.raises(CheckpointError, match="does not match SAM vit_b.*looks like a tiny checkpoint"):
        load_sam("vit_b", path)
    not_sam = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3)}, not_sam)
    with pytest.raises(CheckpointError, match="missing"):
        load_sam("tiny", not_sam, tiny=TINY)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_sam("tiny", path, tiny=TINY)


def test_unknown_model_type():
    with pytest.raises(UserError, match="sam.model_type"):
        build_sam("vit_x")

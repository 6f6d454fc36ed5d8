"""clip-convert: OpenAI-style TorchScript archive → safetensors that the stage loads."""

import json

import pytest
import torch

from pipeline.clip.checkpoint import load_clip
from pipeline.clip.convert import convert_torchscript
from pipeline.errors import InputFileError
from tests.clip_helpers import TINY_CONFIG, run_cli, tiny_clip


def _openai_style_archive(path, seed=7):
    """A tiny CLIP saved like OpenAI's release: scripted, float16 weights, extra int buffers."""
    from open_clip.model import convert_weights_to_lp

    model = tiny_clip(seed=seed).model
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    convert_weights_to_lp(model, dtype=torch.float16)
    for name, value in (("input_resolution", 64), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(model, name):  # plain ints on open_clip's CLIP, buffers in OpenAI's archives
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    return reference


def test_cli_converts_torchscript_and_stage_loads_it(tmp_path, monkeypatch):
    src = tmp_path / "ViT-tiny.pt"
    reference = _openai_style_archive(src)
    out = tmp_path / "vit_tiny.safetensors"
    rc = run_cli(monkeypatch, ["clip-convert", "--in", str(src), "--out", str(out), "--model", "tiny",
               "--model-config", json.dumps(TINY_CONFIG)])
    assert rc == 0 and out.is_file()
    loaded = load_clip("tiny", out, model_config=TINY_CONFIG)
    assert loaded.metadata["converted_from"] == "torchscript" and loaded.metadata["activation"] == "quick_gelu"
    state = loaded.model.state_dict()
    assert set(state) == set(reference)
    for key, value in reference.items():  # weights survive up to float16 rounding of OpenAI's storage
        torch.testing.assert_close(state[key], value, atol=2e-3, rtol=2e-3)
    # the archive itself is refused by the stage, with a pointer to the conversion
    with pytest.raises(InputFileError, match="TorchScript archive"):
        load_clip("tiny", src, model_config=TINY_CONFIG)


def test_converted_weights_with_the_wrong_activation_are_refused(tmp_path):
    src = tmp_path / "ViT-tiny.pt"
    _openai_style_archive(src)
    out = tmp_path / "w.safetensors"
    convert_torchscript(src, out, "tiny", TINY_CONFIG)
    gelu = {**TINY_CONFIG, "quick_gelu": False}
    with pytest.raises(InputFileError, match="w.safetensors: these weights were converted for activation 'quick_gelu'"):
        load_clip("tiny", out, model_config=gelu)


def test_conversion_errors_name_the_file(tmp_path, capsys, monkeypatch):
    src = tmp_path / "ViT-tiny.pt"
    _openai_style_archive(src)
    out = tmp_path / "w.safetensors"
    bigger = {**TINY_CONFIG, "vision_cfg": {**TINY_CONFIG["vision_cfg"], "layers": 3}}
    with pytest.raises(InputFileError, match="ViT-tiny.pt: weights do not fit model"):
        convert_torchscript(src, out, "tiny", bigger)
    assert not out.exists() and not list(tmp_path.glob(".w.safetensors*"))
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1)}, plain)
    rc = run_cli(monkeypatch, ["clip-convert", "--in", str(plain), "--out", str(out), "--model", "ViT-B-16-quickgelu"])
    assert rc == 2 and "plain.pt: not a readable TorchScript archive" in capsys.readouterr().err
    assert not out.exists()

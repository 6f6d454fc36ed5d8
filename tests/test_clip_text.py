"""Text classifier: template ensemble averaging and template sets."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.clip.text import SCENE_TEMPLATES, imagenet_templates, templates, text_classifier
from pipeline.errors import UserError
from tests.clip_helpers import tiny_clip


def test_template_sets():
    net = imagenet_templates()
    assert len(net) == 80 and net[0] == "a bad photo of a {}."
    assert templates(["scene"]) == list(SCENE_TEMPLATES)
    both = templates(["imagenet80", "scene"])
    assert len(both) == 80 + len(SCENE_TEMPLATES) and "there is a {} in the scene." in both
    with pytest.raises(UserError, match="vocabulary.templates"):
        templates(["nope"])


def test_embeddings_are_normalised_means_of_normalised_template_embeddings():
    loaded = tiny_clip(seed=11)
    names = ["chair", "other furniture", "shower curtain"]
    tmpl = ["a photo of a {}.", "there is a {} in the scene.", "{}"]
    got = text_classifier(loaded.model, loaded.tokenizer, names, tmpl, batch_size=2)  # batches cut across names
    assert got.shape == (3, 32) and got.dtype == torch.float32
    with torch.no_grad():
        for i, name in enumerate(names):
            per = [F.normalize(loaded.model.encode_text(loaded.tokenizer([t.format(name)])), dim=-1)[0] for t in tmpl]
            mean = torch.stack(per).mean(0)
            torch.testing.assert_close(got[i], mean / mean.norm(), atol=1e-5, rtol=1e-5)
            # averaging matters: the ensemble differs from any single template
            assert not torch.allclose(got[i], per[0], atol=1e-3)


def test_empty_vocabulary_is_an_error():
    loaded = tiny_clip()
    with pytest.raises(UserError, match="empty vocabulary"):
        text_classifier(loaded.model, loaded.tokenizer, [], ["{}"])


def test_short_context_encoding_equals_open_clip_encode_text():
    from pipeline.clip.text import encode_text

    loaded = tiny_clip(seed=12)
    tokens = loaded.tokenizer(["a chair.", "there is a shower curtain in the scene.", "a bad photo of the other furniture."])
    with torch.no_grad():
        torch.testing.assert_close(encode_text(loaded.model, tokens), loaded.model.encode_text(tokens), atol=1e-5, rtol=1e-5)

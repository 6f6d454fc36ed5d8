"""Vocabularies: benchmark mapping, ScanNet label map, prompt vocabulary."""

import numpy as np
import pytest

from pipeline.vocab import (
    IGNORE,
    NYU40_NAMES,
    benchmark,
    ground_truth_lut,
    prompt_vocabulary,
    read_scannet_label_map,
)


def test_scannet20_ids_and_names():
    bench = benchmark("scannet20")
    assert bench.n_classes == 20
    assert bench.class_names[0] == "wall" and bench.class_names[-1] == "otherfurniture"
    raw = np.array([0, 1, 2, 13, 14, 22, 39, 40, 41, -1])
    mapped = bench.map(raw)
    assert mapped.dtype == np.uint8
    assert list(mapped) == [IGNORE, 0, 1, IGNORE, 12, IGNORE, 19, IGNORE, IGNORE, IGNORE]
    assert list(bench.to_raw(np.array([0, 12, 19, IGNORE]))) == [1, 14, 39, 0]
    assert NYU40_NAMES[13] == "desk"


def test_label_map_reading(tmp_path):
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("id\traw_category\tcategory\tcount\tnyu40id\n1\twall\twall\t10\t1\n7\toffice chair\tchair\t3\t5\n9\tthing\tthing\t1\t\n")
    assert read_scannet_label_map(tsv) == {1: 1, 7: 5, 9: 0}
    lut = ground_truth_lut("scannet-raw", benchmark("scannet20"), [[1, 1], [7, 5], [9, 0]])
    assert lut[7] == 4 and lut[1] == 0 and lut[9] == IGNORE
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tname\n1\twall\n")
    with pytest.raises(ValueError, match="bad.tsv"):
        read_scannet_label_map(bad)


def test_prompt_vocabulary():
    vocab = prompt_vocabulary("scannet20", {"otherfurniture": ["other furniture", "furniture"]}, {"ceiling": ["ceiling"]})
    assert vocab.names[-3:] == ("other furniture", "furniture", "ceiling")
    assert list(vocab.to_class[-3:]) == [19, 19, IGNORE]
    assert vocab.map(np.array([[0, len(vocab.names) - 1]])).tolist() == [[0, IGNORE]]
    with pytest.raises(ValueError, match="unknown class names"):
        prompt_vocabulary("scannet20", {"chairs": ["chair"]})
    with pytest.raises(ValueError, match="empty vocabulary"):
        prompt_vocabulary("scannet20", {name: [] for name in benchmark("scannet20").class_names})


# -- nuScenes ---------------------------------------------------------------------------------

# The fine index -> benchmark id list of /work/shared/nuscenes.md (real category.json order), typed
# here independently of pipeline/vocab.py's name table.
NUSCENES_FINE_IDS = [0, 0, 7, 7, 7, 0, 7, 0, 0, 1, 0, 0, 8, 0, 2, 3, 3, 4, 5, 0, 0, 6, 9, 10, 11, 12, 13, 14, 15, 0, 16, 0]


def _real_categories():
    from tests.nuscenes_fixture import FINE_CLASSES

    return [[i, name] for i, name in enumerate(FINE_CLASSES)]


def test_nuscenes16_ids_and_names():
    bench = benchmark("nuscenes16")
    assert bench.n_classes == 16 and bench.raw_ids == tuple(range(1, 17))
    assert bench.class_names[:4] == ("barrier", "bicycle", "bus", "car")
    assert bench.class_names[-6:] == ("driveable_surface", "other_flat", "sidewalk", "terrain", "manmade", "vegetation")
    assert bench.map(np.arange(18)).tolist() == [IGNORE] + list(range(16)) + [IGNORE]
    assert bench.to_raw(np.array([0, 15, IGNORE])).tolist() == [1, 16, 0]


def test_nuscenes_lidarseg_maps_by_name():
    from pipeline.vocab import LABEL_SPACES, prepared_ground_truth_luts

    assert "nuscenes-lidarseg" in LABEL_SPACES
    bench = benchmark("nuscenes16")
    attrs = {"label_spaces": {"points": "nuscenes-lidarseg"}, "lidarseg_categories": _real_categories()}
    lut = prepared_ground_truth_luts(attrs, bench)["points"]
    assert lut.dtype == np.uint8
    assert bench.to_raw(lut).tolist() == NUSCENES_FINE_IDS
    # the annotator instructions list these five indices wrongly; a table in that order still maps by name
    wrong = dict(_real_categories())
    wrong.update({25: "flat.sidewalk", 26: "flat.terrain", 27: "flat.other", 29: "static.vegetation", 30: "static.other"})
    lut = ground_truth_lut("nuscenes-lidarseg", bench, categories=sorted(wrong.items()))
    assert [bench.class_names[c] if c != IGNORE else None for c in lut[[25, 26, 27, 29, 30]]] == [
        "sidewalk", "terrain", "other_flat", "vegetation", None]
    assert bench.to_raw(lut)[[25, 26, 27, 29, 30]].tolist() == [13, 14, 12, 16, 0]  # benchmark ids, by name
    with pytest.raises(ValueError, match="unknown nuScenes fine class 'vehicle.spaceship'"):
        ground_truth_lut("nuscenes-lidarseg", bench, categories=[[0, "noise"], [1, "vehicle.spaceship"]])
    with pytest.raises(ValueError, match="nuscenes16"):
        ground_truth_lut("nuscenes-lidarseg", benchmark("scannet20"), categories=_real_categories())
    with pytest.raises(ValueError, match="needs the lidarseg categories"):
        prepared_ground_truth_luts({"label_spaces": {"points": "nuscenes-lidarseg"}}, bench)


def test_default_prompts_read_underscores_as_spaces():
    nus = prompt_vocabulary("nuscenes16", {"car": ["car", "van"], "barrier": ["barrier"], "bicycle": ["bicycle"]})
    assert nus.names[:5] == ("barrier", "bicycle", "bus", "car", "van")  # the config overrides the defaults class by class
    assert nus.names[-1] == "sky" and nus.to_class[-1] == IGNORE  # the default prompt-only extra
    assert "traffic cone" in nus.names and "construction vehicle" in nus.names and "road" in nus.names
    plain = prompt_vocabulary("nuscenes16", {"other_flat": ["other_flat".replace("_", " ")]})
    assert "other flat" in plain.names
    assert not any("_" in n for n in nus.names)
    assert nus.to_class[nus.names.index("traffic cone")] == benchmark("nuscenes16").class_names.index("traffic_cone")
    scannet = prompt_vocabulary("scannet20")
    expected = tuple("other furniture" if n == "otherfurniture" else n for n in benchmark("scannet20").class_names) + ("ceiling",)
    assert scannet.names == expected  # the defaults config.yaml used to spell out
    assert prompt_vocabulary("scannet20", extra_prompts={"ceiling": []}).names == expected[:-1]  # an empty list drops an extra

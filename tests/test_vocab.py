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

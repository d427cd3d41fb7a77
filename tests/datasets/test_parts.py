"""Part-segmentation classes: the reference's ids, the flip table, map validation."""

import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.parts import (
    FLIP_LABELS,
    IGNORE,
    NUM_CLASSES,
    PART_CLASSES,
    check_partseg,
    flip_labels,
)


def test_ids_are_the_reference_class_mapping():
    # data_generation/generate_partseg.py: head 1, eye 2, ear 3, torso 4, left_front 5,
    # right_front 6, left_back 7, right_back 8, tail 9; background 0; hourglass_multitask
    # predicts 1 + 9 channels.
    reference = {
        "head": 1,
        "eye": 2,
        "ear": 3,
        "torso": 4,
        "left_front": 5,
        "right_front": 6,
        "left_back": 7,
        "right_back": 8,
        "tail": 9,
    }
    assert {name: PART_CLASSES.index(name) for name in reference} == reference
    assert PART_CLASSES[0] == "background" and NUM_CLASSES == 10 and IGNORE == 255


def test_flip_swaps_legs_and_nothing_else():
    labels = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], dtype=np.uint8)
    assert flip_labels(labels).tolist() == [[0, 1, 2, 3, 4], [6, 5, 8, 7, 9]]
    assert flip_labels(np.array([IGNORE], np.uint8)).tolist() == [IGNORE]
    everything = np.arange(256, dtype=np.uint8)
    assert np.array_equal(flip_labels(flip_labels(everything)), everything)  # an involution
    assert not FLIP_LABELS.flags.writeable


def test_check_partseg_accepts_valid_maps():
    check_partseg(np.array([[0, 9], [IGNORE, 4]], np.uint8), source="ok.png", size=(2, 2))


@pytest.mark.parametrize(
    "labels, size, message",
    [
        (np.zeros((2, 2, 3), np.uint8), None, "single-channel 8-bit"),
        (np.zeros((2, 2), np.uint16), None, "single-channel 8-bit"),
        (np.zeros((2, 3), np.uint8), (2, 2), "3x2, the image 2x2"),
        (np.array([[0, 10], [254, 1]], np.uint8), None, "labels [10, 254]"),
    ],
)
def test_check_partseg_names_the_file_and_the_fault(labels, size, message):
    with pytest.raises(DataError, match="bad.png") as err:
        check_partseg(labels, source="bad.png", size=size)
    assert message in str(err.value)

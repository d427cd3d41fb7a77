"""Issue 14's top-down models and codecs run through the two entry points (train/train.py,
evaluation/test.py) on a COCO-layout folder: a tiny fit, the checkpoint, an AP table."""

from __future__ import annotations

import json

import pytest

from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.train import cli

#: Small, CPU-quick sizes (64 x 64 input) for every method.
TINY = (
    *("--dataset", "coco", "--keypoint-spec", "coco17", "--inp-res", "64", "--inp-width", "64"),
    *("--out-res", "16", "--train-batch", "2", "--test-batch", "4", "--workers", "0"),
    *("--epochs", "1", "--device", "cpu", "--no-progress", "--sigma", "2"),
)
#: method -> its flags (the arch and sizes; a codec where the method is one).
METHODS = {
    "cpn": ("-a", "cpn", "--depth", "18", "--channels", "16", "--ohkm-topk", "8"),
    "mspn": ("-a", "mspn", "--stacks", "2", "--depth", "18", "--channels", "16"),
    "rsn": ("-a", "rsn", "--stacks", "1", "--depth", "18", "--channels", "16"),
    "lpn": ("-a", "lpn", "--depth", "50", "--codec", "soft-argmax"),
    "lpn_no_gc": ("-a", "lpn", "--depth", "50", "--attention", "none"),
    "grmi": ("-a", "simple_baseline", "--depth", "18", "--codec", "offset"),
}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    make_coco_fixture(root, images=2)
    return root


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_trains_and_evaluates_with_the_two_entry_points(method, people, tmp_path, capsys):
    run = tmp_path / method
    flags = (*TINY, "--image-path", str(people), *METHODS[method])
    assert cli.train_main([*flags, "-c", str(run)]) == 0
    assert (run / "model_best.pth.tar").is_file()
    out = tmp_path / f"{method}_eval"
    argv = [*flags, "--evaluate", "--resume", str(run / "model_best.pth.tar"), "-c", str(out)]
    assert cli.test_main([*argv, "--flip"]) == 0
    text = capsys.readouterr().out
    assert "OKS AP with ground-truth boxes" in text
    scores = json.loads((out / "oks_results.json").read_text())
    assert 0.0 <= scores["AP"] <= 1.0 and scores["spec"] == "coco17"

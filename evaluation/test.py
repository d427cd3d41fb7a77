"""Evaluate a checkpoint: ``python evaluation/test.py --evaluate --resume CKPT ...``.

Takes the reference's test.py flags (``--dataset1 synthetic_animal_sp --dataset2 real_animal_sp
--arch hg ...``: ``--dataset2`` is the data evaluated). Prints per-joint PCK@0.05 (legacy and
precise) on ``--eval-split`` (valid, or a benchmark's held-out test shots), writes
preds_<split>.mat, pck_results.json/.csv and pck.png into --checkpoint. A multitask model
(``--arch hg_multitask``) on data with part masks (``--dataset2 synthetic_animal_sp_multitask``)
also gets its part IoU table and segmentation_results.json.

``python evaluation/test.py --ann ANNOTATIONS.json --results RESULTS.json -c OUT`` scores an
existing COCO keypoint results file instead (OKS AP with pycocotools, no model):
``animalpose.evaluation.score``.
"""

import sys

from animalpose.evaluation.score import score_main, wants_scoring
from animalpose.train.cli import test_main

if __name__ == "__main__":
    sys.exit(score_main() if wants_scoring(sys.argv[1:]) else test_main())

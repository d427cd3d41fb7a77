"""Evaluate a checkpoint: ``python evaluation/test.py --evaluate --resume CKPT ...``.

Takes the reference's test.py flags (``--dataset1 synthetic_animal_sp --dataset2 real_animal_sp
--arch hg ...``: ``--dataset2`` is the data evaluated). Prints per-joint PCK@0.05 (legacy and
precise) on ``--eval-split`` (valid, or a benchmark's held-out test shots), writes
preds_<split>.mat, pck_results.json/.csv and pck.png into --checkpoint. A multitask model
(``--arch hg_multitask``) on data with part masks (``--dataset2 synthetic_animal_sp_multitask``)
also gets its part IoU table and segmentation_results.json.
"""

import sys

from animalpose.train.cli import test_main

if __name__ == "__main__":
    sys.exit(test_main())

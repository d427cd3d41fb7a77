"""Evaluate a checkpoint: ``python evaluation/test.py --evaluate --resume CKPT ...``.

Prints per-joint PCK@0.05 (legacy and precise) on ``--eval-split`` (valid, or a benchmark's
held-out test shots), writes preds_<split>.mat, pck_results.json/.csv and pck.png into
--checkpoint.
"""

import sys

from animalpose.train.cli import test_main

if __name__ == "__main__":
    sys.exit(test_main())

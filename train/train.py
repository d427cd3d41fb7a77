"""Train a keypoint model: ``python train/train.py --dataset synthetic_animal_sp ...``.

Takes the reference's flags (see ``python train/train.py --help`` and docs/configs.md).
"""

import sys

from animalpose.train.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())

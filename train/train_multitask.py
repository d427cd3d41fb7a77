"""Train keypoints and part segmentation: ``python train/train_multitask.py --dataset
synthetic_animal_sp_multitask -a hg_multitask ...`` (the reference's Example 4).

Takes train.py's flags (``--help``, docs/configs.md); the loss adds the part cross-entropy
weighted ``--seg-weight / (epoch + 1)`` (the reference's 0.01), validation reports mIoU.
"""

import sys

from animalpose.train.cli import train_multitask_main

if __name__ == "__main__":
    sys.exit(train_multitask_main())

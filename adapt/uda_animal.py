"""UDA-Animal-Pose: ``python adapt/uda_animal.py --resume SOURCE_CKPT --image-path DATA ...``.

Takes the flags of adapt/ccssl.py with UDA-Animal's defaults (``python adapt/uda_animal.py
--help``; the paper's full preset: configs/uda_animal.yaml).
"""

import sys

from animalpose.adapt.cli import uda_main

if __name__ == "__main__":
    sys.exit(uda_main())

"""CC-SSL: ``python adapt/ccssl.py --resume SOURCE_CKPT --image-path animal_data --animal dog ...``.

Takes the reference's CCSSL.py flags (see ``python adapt/ccssl.py --help`` and
docs/adaptation.md).
"""

import sys

from animalpose.adapt.cli import ccssl_main

if __name__ == "__main__":
    sys.exit(ccssl_main())

"""WS-CDA (+ PPLO): ``python adapt/wscda.py --resume SOURCE_CKPT --image-path animal_data ...``.

See ``python adapt/wscda.py --help`` and docs/adaptation.md.
"""

import sys

from animalpose.adapt.cli import wscda_main

if __name__ == "__main__":
    sys.exit(wscda_main())

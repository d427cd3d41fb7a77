"""Domain gap of a benchmark: source only vs target-supervised oracle on the held-out test split.

    python datasets/generate.py --benchmark dogshift-v2-cpu --image-path animal_data
    python benchmarks/domain_gap.py --benchmark dogshift-v2-cpu --image-path animal_data \\
        --seeds 0 1 2 [--out runs/domain_gap/dogshift-v2-cpu] [--epochs 15] [--device cpu]
    python benchmarks/domain_gap.py --benchmark dogshift-v2 --gpu-full --seeds 0 1 2

The protocol and outputs are those of ``animalpose.adapt.compare`` (docs/adaptation.md) with
the methods ``source`` and ``oracle``; ``benchmarks/adaptation.py`` adds the adaptation methods.
"""

import sys

from animalpose.adapt.compare import main as compare_main
from animalpose.adapt.compare_methods import GAP_METHODS
from animalpose.adapt.compare_methods import METHODS as ALL_METHODS

#: This script's methods.
METHODS = {name: ALL_METHODS[name] for name in GAP_METHODS}


def main(argv=None) -> int:
    return compare_main(argv, report="domain_gap", methods=GAP_METHODS)


if __name__ == "__main__":
    sys.exit(main())

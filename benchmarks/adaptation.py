"""The comparison table: source only, CC-SSL, WS-CDA, CC-SSL + WS-CDA and the oracle, N seeds.

    python datasets/generate.py --benchmark dogshift-v2-cpu --image-path animal_data
    python benchmarks/adaptation.py --benchmark dogshift-v2-cpu --image-path animal_data \\
        --seeds 0 1 2 [--adapt-epochs 12] [--methods source ccssl oracle]
    python benchmarks/adaptation.py --benchmark dogshift-v2 --gpu-full --seeds 0 1 2

PCK@0.05 per part and mean (mean +- std over seeds) on the held-out target test split, models
selected on the target valid split (and last-epoch numbers), both metric variants; writes
``adaptation.md``, ``adaptation.json`` and ``adaptation.png``. Protocol: docs/adaptation.md
(``animalpose.adapt.compare``). ``--methods`` may add ``wscda_pplo`` (WS-CDA + PPLO).
"""

import sys

from animalpose.adapt.compare import main
from animalpose.adapt.compare_methods import ADAPTATION_METHODS

if __name__ == "__main__":
    sys.exit(main(report="adaptation", methods=ADAPTATION_METHODS))

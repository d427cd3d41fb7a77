"""Render the built-in 3-D animal data in the reference's layouts (docs/generator.md).

    python datasets/generate.py --image-path animal_data [--renderer dog|flat] ...
    python datasets/generate.py --benchmark dogshift-v2-cpu --image-path animal_data

``--help`` lists every flag; the work is done by ``animalpose.datasets.generator``.
"""

from animalpose.datasets.generator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Write small learnable data sets in the reference's layouts.

The writing lives in ``animalpose.datasets.generator.fixtures``.

python datasets/make_fixture.py --image-path animal_data [--animal horse] [--num-images 600]
    [--shots 6 --frames-per-shot 20]
"""

from animalpose.datasets.generator.fixtures import main

if __name__ == "__main__":
    raise SystemExit(main())

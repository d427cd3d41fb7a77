"""Write small learnable data sets in the reference's layouts.

The drawing and writing live in ``animalpose.datasets.generator.cartoon``.

python datasets/make_fixture.py --image-path animal_data [--animal horse] [--num-images 600]
    [--shots 6 --frames-per-shot 20]
"""

from animalpose.datasets.generator.cartoon import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Write small learnable data sets in the reference's layouts (see animalpose.datasets.fixtures).

python datasets/make_fixture.py --image-path animal_data [--animal horse] [--num-images 600]
    [--shots 6 --frames-per-shot 20]
"""

from animalpose.datasets.fixtures import main

if __name__ == "__main__":
    raise SystemExit(main())

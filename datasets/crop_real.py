"""Write the 256x256 annotation-box crops of the kept TigDog frames to the reference's
real_animal_crop layout (see animalpose.datasets.formats.crops.write_real_crops).

    python datasets/crop_real.py --image-path animal_data --animal horse [tiger]
"""

from animalpose.datasets.formats.crops import crop_real_main

if __name__ == "__main__":
    raise SystemExit(crop_real_main())

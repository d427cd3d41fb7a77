"""Install animalpose: the card's folders become one ``animalpose`` namespace.

datasets/ -> animalpose.datasets, train/ -> animalpose.train, adapt/ -> animalpose.adapt,
evaluation/ -> animalpose.evaluation. No top-level ``datasets`` or ``train`` package is
installed (Hugging Face owns ``datasets``).
"""

from setuptools import find_packages, setup

FOLDERS = {
    "animalpose.datasets": "datasets",
    "animalpose.evaluation": "evaluation",
    "animalpose.train": "train",
    "animalpose.adapt": "adapt",
}
# Every folder with an __init__.py below the card's folders is a subpackage, found, not listed.
PACKAGES = [
    f"{package}.{sub}" if sub else package
    for package, folder in FOLDERS.items()
    for sub in ["", *find_packages(folder)]
]

setup(
    name="animalpose",
    version="0.1.0",
    description="Animal pose estimation under domain shift: synthetic-to-real training, "
    "CC-SSL and WS-CDA adaptation, per-joint PCK.",
    license="MIT",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=FOLDERS,
    package_data={"animalpose.datasets.formats": ["vertex_tables/*.json"]},
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=2,<3",
        "imaug==0.4.3",
        "scipy>=1.13",
        "opencv-python>=4.10",
        "h5py>=3.11",
        "tensorboard>=2.17",
        "pyyaml>=6",
        "tqdm>=4.66",
        "matplotlib>=3.9",
        "pillow>=10",  # the reference's PIL resizes (datasets/transforms/legacy_crop.py)
        "scikit-image>=0.24",  # bundled public-domain photos for the generator's target style
        "pycocotools>=2.0.8",  # COCOeval OKS AP (evaluation/oks.py); 2.0.8 is the first for numpy 2
        # The built-in 3-D animal generator: dm_control's skinned dog. mujoco 4 breaks
        # suite.load('dog') (no MjModel.flex_vertedge), so both are pinned.
        "dm-control==1.0.50",
        "mujoco==3.17.0",
    ],
    extras_require={"test": ["pytest>=8", "ruff==0.17.6"]},
)

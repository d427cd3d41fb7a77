"""What the generator writes: ``GeneratorSettings`` (renderer, counts, frame size, seed, and each
style's layout, breed and ground cover), checked when built, and the ``generator.json`` manifest
they give each layout folder. Counts, layouts, breeds and covers: docs/generator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from animalpose.datasets.generator.dog.ground_cover import COVERS
from animalpose.datasets.generator.dog.shape import BREEDS
from animalpose.datasets.generator.renderer import MIN_FRAME_SIDE, RENDERERS
from animalpose.datasets.generator.writers import GENERATOR_VERSION, SyntheticLayout, TigDogLayout

__all__ = ["DEFAULT_LAYOUTS", "LAYOUTS", "GeneratorSettings"]

#: Layout name -> writer class; default layout of each style.
LAYOUTS = {"synthetic": SyntheticLayout, "tigdog": TigDogLayout}
DEFAULT_LAYOUTS = {"source": "synthetic", "target": "tigdog"}


@dataclass(frozen=True)
class GeneratorSettings:
    """What to generate. root: the image path. size: frame (w, h). Counts as in
    docs/generator.md; layouts: ``"synthetic"`` or ``"tigdog"`` per style."""

    root: Path
    renderer: str = "dog"
    source_images: int = 10000
    target_shots: int = 200
    frames_per_shot: int = 50
    size: tuple[int, int] = (640, 480)
    seed: int = 0
    source_layout: str = DEFAULT_LAYOUTS["source"]
    target_layout: str = DEFAULT_LAYOUTS["target"]
    source_breed: str = "mixed"
    target_breed: str = "mixed"
    source_cover: str = "none"
    target_cover: str = "none"

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {self.renderer!r}; known: {sorted(RENDERERS)}")
        for known, kind in ((BREEDS, "breed"), (COVERS, "cover"), (LAYOUTS, "layout")):
            for name in (f"source_{kind}", f"target_{kind}"):
                if getattr(self, name) not in known:
                    raise ValueError(
                        f"{name} must be one of {sorted(known)}, got {getattr(self, name)!r}"
                    )
        for name in ("source_cover", "target_cover"):
            if self.renderer == "flat" and getattr(self, name) != "none":
                raise ValueError(
                    f"the flat renderer draws no ground cover ({name} "
                    f"{getattr(self, name)!r}); use the dog renderer"
                )
        if self.source_images < 0 or self.target_shots < 0 or self.frames_per_shot < 1:
            raise ValueError("counts must be non-negative and frames_per_shot positive")
        if self.seed < 0 or min(self.size) < MIN_FRAME_SIDE:
            raise ValueError(
                f"seed must be >= 0 and the size at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE}, "
                f"got {self.seed}, {self.size}"
            )
        if self.source_layout == self.target_layout and self.source_images and self.target_shots:
            raise ValueError(
                f"source and target would share the {self.source_layout} layout of one image "
                "path (one data set of two styles); use different layouts, or generate them "
                "into different --image-path folders"
            )

    def layout_name(self, style: str) -> str:
        return self.source_layout if style == "source" else self.target_layout

    def breed(self, style: str) -> str:
        return self.source_breed if style == "source" else self.target_breed

    def cover(self, style: str) -> str:
        return self.source_cover if style == "source" else self.target_cover

    def num_jobs(self, style: str) -> int:
        """Stills (synthetic layout) or shots (TigDog layout) of ``style``."""
        f = self.frames_per_shot
        tigdog = self.layout_name(style) == "tigdog"
        if style == "source":
            return math.ceil(self.source_images / f) if tigdog else self.source_images
        return self.target_shots if tigdog else self.target_shots * f

    def manifest(self, style: str, animal: str) -> dict:
        """The ``generator.json`` content of ``style``'s layout folder."""
        layout = self.layout_name(style)
        counts = (
            {"shots": self.num_jobs(style), "frames_per_shot": self.frames_per_shot}
            if layout == "tigdog"
            else {"images": self.num_jobs(style)}
        )
        return {
            "generator_version": GENERATOR_VERSION,
            "renderer": self.renderer,
            "animal": animal,
            "style": style,
            "breed": self.breed(style),
            "cover": self.cover(style),
            "layout": layout,
            "size": list(self.size),
            "seed": self.seed,
            **counts,
        }

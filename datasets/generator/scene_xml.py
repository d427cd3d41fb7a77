"""MJCF pieces every rendered scene shares: the ground's replaceable texture and material, and
the two world lights the renderers aim per frame (``styles/light.py``).

The dog (``dog/model.py``) and the people (``human/model.py``) build their scene XML from
MuJoCo's own models; both add these elements, so ground and light behave the same in both.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

__all__ = ["add_ground_material", "add_world_lights"]


def add_ground_material(asset: ET.Element, *, texture_size: int) -> None:
    """A flat grey ``ground`` texture of ``texture_size`` texels (replaced per scene by
    ``OffscreenView.upload_texture``) and the ``ground`` material using it, in ``asset``."""
    size = str(int(texture_size))
    ET.SubElement(
        asset,
        "texture",
        name="ground",
        type="2d",
        builtin="flat",
        width=size,
        height=size,
        rgb1=".5 .5 .5",
    )
    ET.SubElement(
        asset,
        "material",
        name="ground",
        texture="ground",
        texuniform="true",
        texrepeat="1 1",
        reflectance="0",
        specular="0.05",
        shininess="0.05",
    )


def add_world_lights(world: ET.Element) -> None:
    """Two directional lights in ``world``: ``sun`` (casts shadows) and ``fill`` (does not),
    both pointing down until a renderer aims them."""
    for name, shadow in (("sun", "true"), ("fill", "false")):
        ET.SubElement(
            world,
            "light",
            name=name,
            type="directional",
            castshadow=shadow,
            pos="0 0 5",
            dir="0 0 -1",
        )

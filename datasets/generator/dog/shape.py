"""The dog's shape: bone-chain lengths and skin girth per breed (``BREEDS``), applied to the model.

Factors are relative to the dm_control dog's own proportions (1 = unchanged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BREEDS",
    "Breed",
    "GirthModel",
    "ShapeSample",
    "get_breed",
    "sample_shape",
]

#: Body chains whose ``body_pos`` (offset from the parent) is scaled, by shape factor.
SHAPE_CHAINS: dict[str, tuple[str, ...]] = {
    "front_leg": (
        "lower_arm_L",
        "hand_anchor_L",
        "finger_L",
        "lower_arm_R",
        "hand_anchor_R",
        "finger_R",
    ),
    "hind_leg": (
        "lower_leg_L",
        "foot_L",
        "foot_anchor_L",
        "lower_leg_R",
        "foot_R",
        "foot_anchor_R",
    ),
    "neck": ("C_6", "C_5", "C_4", "C_3", "C_2", "C_1", "skull"),
    "lumbar": ("L_2", "L_3", "L_4", "L_5", "L_6", "L_7", "pelvis"),
    "tail": tuple(f"Ca_{i}" for i in range(2, 22)),
}
#: Girth groups: skin bone name prefix -> girth factor name (first match; others keep 1).
GIRTH_GROUPS: dict[str, str] = {
    "torso": "trunk",
    "L_": "trunk",
    "pelvis": "trunk",
    "scapula": "trunk",
    "C_": "neck",
    "Ca_": "tail",
    "upper_": "leg",
    "lower_": "leg",
}


@dataclass(frozen=True)
class ShapeSample:
    """Length factors per ``SHAPE_CHAINS`` entry and girth factors per ``GIRTH_GROUPS`` value."""

    lengths: dict[str, float]
    girths: dict[str, float]


@dataclass(frozen=True)
class Breed:
    """Uniform ranges (low, high) of one kind of dog's shape factors: ``leg`` scales both leg
    chains (each then jittered by +-4 %), ``neck``/``lumbar``/``tail`` the other
    ``SHAPE_CHAINS``, the ``*_girth`` ranges the ``GIRTH_GROUPS`` factors. 1 is the model's own
    proportion."""

    leg: tuple[float, float]
    neck: tuple[float, float]
    lumbar: tuple[float, float]
    tail: tuple[float, float]
    trunk_girth: tuple[float, float]
    neck_girth: tuple[float, float]
    leg_girth: tuple[float, float]
    tail_girth: tuple[float, float]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            low, high = getattr(self, f.name)
            if not 0.2 <= low <= high <= 3.0:
                raise ValueError(
                    f"Breed.{f.name} must be a range inside [0.2, 3], got {(low, high)}"
                )

    def mean_leg(self) -> float:
        return 0.5 * (self.leg[0] + self.leg[1])


#: Kinds of dog, by name. "mixed" (every source style, and the target of dogshift-v1) draws each
#: dog from wide ranges around the model's proportions. "basset" is a breed outside them: legs
#: half as long, a long back, a heavy trunk; the target dogs of dogshift-v2, a shift of shape that
#: no image augmentation of the source undoes (docs/generator.md).
BREEDS: dict[str, Breed] = {
    "mixed": Breed(
        leg=(0.85, 1.35),
        neck=(0.8, 1.3),
        lumbar=(0.85, 1.2),
        tail=(0.6, 1.3),
        trunk_girth=(0.88, 1.2),
        neck_girth=(0.9, 1.2),
        leg_girth=(0.85, 1.2),
        tail_girth=(0.8, 1.8),
    ),
    "basset": Breed(
        leg=(0.5, 0.62),
        neck=(0.75, 0.95),
        lumbar=(1.3, 1.5),
        tail=(0.6, 0.9),
        trunk_girth=(1.25, 1.4),
        neck_girth=(1.2, 1.35),
        leg_girth=(1.25, 1.45),
        tail_girth=(1.2, 1.6),
    ),
}


def get_breed(name: str) -> Breed:
    """``BREEDS[name]``; ValueError listing the names otherwise."""
    try:
        return BREEDS[name]
    except KeyError:
        raise ValueError(f"unknown breed {name!r}; known: {sorted(BREEDS)}") from None


def sample_shape(rng: np.random.Generator, breed: str = "mixed") -> ShapeSample:
    """One dog of ``breed`` (``BREEDS``). Every breed makes the same draws from ``rng``, so
    scenes of equal seeds differ only in shape."""
    b = get_breed(breed)
    leg = rng.uniform(*b.leg)
    return ShapeSample(
        lengths={
            "front_leg": leg * rng.uniform(0.96, 1.04),
            "hind_leg": leg * rng.uniform(0.96, 1.04),
            "neck": rng.uniform(*b.neck),
            "lumbar": rng.uniform(*b.lumbar),
            "tail": rng.uniform(*b.tail),
        },
        girths={
            "trunk": rng.uniform(*b.trunk_girth),
            "neck": rng.uniform(*b.neck_girth),
            "leg": rng.uniform(*b.leg_girth),
            "tail": rng.uniform(*b.tail_girth),
        },
    )


def scaled_body_pos(
    body_pos: np.ndarray, body_names: list[str], lengths: dict[str, float]
) -> np.ndarray:
    """(nbody, 3) copy of ``body_pos`` with the ``SHAPE_CHAINS`` offsets scaled."""
    out = body_pos.copy()
    for chain, factor in lengths.items():
        for name in SHAPE_CHAINS[chain]:
            out[body_names.index(name)] *= factor
    return out


@dataclass(frozen=True)
class GirthModel:
    """Thicken or thin the bind-pose skin around its bones, per girth group.

    Each vertex v moves radially about its blended bone axis: c(v) = sum_b w_vb (p_b + ((v - p_b)
    . a_b) a_b) and v' = c + g(v) (v - c) with g(v) = 1 + sum_groups w_vg (g_group - 1), w_vg the
    vertex's total skinning weight on the group's bones. c and w_vg are fixed per model.
    """

    vertices: np.ndarray  # (V, 3) bind pose
    centre: np.ndarray  # (V, 3) c(v)
    group_weight: np.ndarray  # (V, G) w_vg
    groups: tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        vertices: np.ndarray,
        pair_vertex: np.ndarray,
        pair_bone: np.ndarray,
        pair_weight: np.ndarray,
        bone_pos: np.ndarray,
        bone_axis: np.ndarray,
        bone_group: list[str],
    ) -> GirthModel:
        """From the skinning pairs (vertex index, bone index, weight), bone bind positions (B, 3),
        unit axes (B, 3) and each bone's GIRTH_GROUPS value ("" for none)."""
        rel = vertices[pair_vertex] - bone_pos[pair_bone]
        axis = bone_axis[pair_bone]
        centre = bone_pos[pair_bone] + (rel * axis).sum(1, keepdims=True) * axis
        n = len(vertices)
        wsum = np.maximum(np.bincount(pair_vertex, pair_weight, minlength=n), 1e-9)
        c = (
            np.stack(
                [
                    np.bincount(pair_vertex, pair_weight * centre[:, i], minlength=n)
                    for i in range(3)
                ],
                1,
            )
            / wsum[:, None]
        )
        groups = tuple(sorted(set(GIRTH_GROUPS.values())))
        bone_g = np.array([groups.index(g) if g else -1 for g in bone_group])
        gw = np.zeros((n, len(groups)))
        for k in range(len(groups)):
            sel = bone_g[pair_bone] == k
            gw[:, k] = np.bincount(pair_vertex[sel], pair_weight[sel], minlength=n) / wsum
        return cls(vertices=vertices, centre=c, group_weight=gw, groups=groups)

    def apply(self, girths: dict[str, float]) -> np.ndarray:
        """(V, 3) bind-pose vertices for the girth factors of ``ShapeSample.girths``."""
        factors = np.array([girths.get(g, 1.0) for g in self.groups]) - 1.0
        g = 1.0 + self.group_weight @ factors
        return self.centre + g[:, None] * (self.vertices - self.centre)

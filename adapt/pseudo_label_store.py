"""One stored pseudo-label round: :class:`PseudoLabels` and its compact ``.npz`` file.

``generate_pseudo_labels`` (``pseudo_labels.py``) returns a round with nothing selected;
``PseudoLabels.with_selection`` applies a keep share (``selection.py``); ``save``/``load`` write
and read one compressed ``.npz`` of plain arrays (no pickles), validated on load. Keypoints are
stored in frame pixels, so the labels do not depend on the crop the model saw. A round records
what made it (the run's settings, the ``weights_digest`` of the predicting model), so that a
continued run reuses only its own rounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from animalpose.adapt.selection import select_top_share
from animalpose.datasets.fileio import DataError, atomic_write

__all__ = [
    "FORMAT",
    "NO_ANNOTATION",
    "ORACLE_FILTERS",
    "PseudoLabels",
    "confidence_auc",
    "hit_fraction",
    "pck_diagnostics",
    "weights_digest",
]

#: Format tag stored in every pseudo-label file.
FORMAT = "animalpose.pseudo_labels/1"
#: ``hits`` value of a keypoint without a visible annotation (no PCK verdict).
NO_ANNOTATION = -1
#: ``adapt.oracle_filter``, a diagnostic that reads the target's annotations (never a method):
#: none (the selection as it is) | kept (of the selected labels, only the right ones) | all
#: (every right label, whatever its confidence). Right = ``hits`` 1.
ORACLE_FILTERS = ("none", "kept", "all")
#: Array entries of the file: name -> (dtype, shape in terms of N rows and K keypoints).
_ARRAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "indices": ("int64", ("N",)),
    "shots": ("int64", ("N",)),
    "frames": ("int64", ("N",)),
    "keypoints": ("float32", ("N", "K", "2")),
    "confidence": ("float32", ("N", "K")),
    "substituted": ("bool", ("N", "K")),
    "selected": ("bool", ("N", "K")),
    "hits": ("int8", ("N", "K")),
}
_SCALARS: dict[str, str] = {
    "round": "int64",
    "epoch": "int64",
    "keep_share": "float64",
    "threshold": "float64",
}
_DIAGNOSTICS = ("diagnostic_names", "diagnostic_values")
#: Optional 0-d str entries (absent in files written before they were recorded): ``settings``
#: (JSON object) and ``weights`` (a ``weights_digest``).
_PROVENANCE = ("settings", "weights")


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state_dict's names, dtypes, shapes and bytes: which weights these are."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class PseudoLabels:
    """One round of pseudo-labels, rows in dataset (loader) order.

    Attributes:
        round: pseudo-label round; epoch: training epoch it was generated at.
        keep_share: share selected (0 before selection); threshold: confidence threshold of the
            selection (NaN before selection).
        indices: (N,) int64 dataset indices; shots, frames: (N,) int64 TigDog shot and frame.
        keypoints: (N, K, 2) float32 frame pixels; confidence: (N, K) float32 heatmap peaks.
        substituted: (N, K) bool, replaced by the flowed previous frame's label.
        selected: (N, K) bool, trains (visible = selected).
        diagnostics: ``pck_all`` / ``pck_selected`` (fraction of labels within 0.05 x box side
            of a visible annotation, all / selected), ``kept_share``, ``substituted`` (count),
            ``predict_seconds``, ``flow_seconds``.
        hits: (N, K) int8 1 / 0 label within / beyond 0.05 x box side of the annotation,
            -1 without a visible annotation.
        settings: the resolved config (``config_to_dict``, as JSON gives it back) of the run
            that made the round; weights: ``weights_digest`` of the model that predicted it.
            None when not recorded.
    """

    round: int
    epoch: int
    keep_share: float
    threshold: float
    indices: np.ndarray
    shots: np.ndarray
    frames: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    substituted: np.ndarray
    selected: np.ndarray
    diagnostics: dict[str, float] = field(default_factory=dict)
    hits: np.ndarray | None = None
    settings: dict | None = None
    weights: str | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def hits_or_unjudged(self) -> np.ndarray:
        """``hits``, or every label unjudged (-1) when the round recorded none."""
        if self.hits is None:
            return np.full(self.confidence.shape, NO_ANNOTATION, dtype=np.int8)
        return self.hits

    def with_selection(self, keep_share: float) -> PseudoLabels:
        """A copy with ``selected``/``threshold``/``keep_share`` set by ``select_top_share``."""
        selected, threshold = select_top_share(self.confidence, keep_share)
        diagnostics = {
            **self.diagnostics,
            **pck_diagnostics(self.hits_or_unjudged(), selected, self.substituted),
        }
        return replace(
            self,
            keep_share=float(keep_share),
            threshold=threshold,
            selected=selected,
            diagnostics=diagnostics,
        )

    def with_oracle_filter(self, mode: str) -> PseudoLabels:
        """A copy whose ``selected`` keeps only labels the annotations call right (``hits`` 1):
        of the selected ones (``"kept"``) or of all (``"all"``); ``"none"`` returns ``self``.
        A diagnostic (``ORACLE_FILTERS``): how far a perfect correctness check would take
        self-training. ValueError without annotations (every ``hits`` -1) or for another mode."""
        if mode not in ORACLE_FILTERS:
            raise ValueError(f"unknown oracle filter {mode!r}; valid: {list(ORACLE_FILTERS)}")
        if mode == "none":
            return self
        hits = self.hits_or_unjudged()
        if hits.size and (hits == NO_ANNOTATION).all():
            raise ValueError(
                f"oracle filter {mode!r} needs the target train split's annotations; "
                "these labels have none to check against"
            )
        right = hits == 1
        selected = right & self.selected if mode == "kept" else right
        diagnostics = {
            **self.diagnostics,
            **pck_diagnostics(hits, selected, self.substituted),
        }
        return replace(self, selected=selected, diagnostics=diagnostics)

    def save(self, path: str | os.PathLike) -> None:
        """Write one compressed ``.npz`` atomically (every entry a plain array, no pickles)."""
        names = list(self.diagnostics)
        values = {name: getattr(self, name) for name in _ARRAYS} | {"hits": self.hits_or_unjudged()}
        arrays = {name: np.asarray(values[name], dtype=d) for name, (d, _) in _ARRAYS.items()}
        scalars = {name: np.asarray(getattr(self, name), dtype=d) for name, d in _SCALARS.items()}
        provenance = {}
        if self.settings is not None:
            provenance["settings"] = np.asarray(json.dumps(self.settings, sort_keys=True))
        if self.weights is not None:
            provenance["weights"] = np.asarray(str(self.weights))
        with atomic_write(path) as f:
            np.savez_compressed(
                f,
                format=np.asarray(FORMAT),
                **scalars,
                **arrays,
                diagnostic_names=np.asarray(names, dtype=np.str_).reshape(len(names)),
                diagnostic_values=np.asarray([self.diagnostics[n] for n in names], np.float64),
                **provenance,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> PseudoLabels:
        """Read a file written by :meth:`save`; DataError naming the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: pseudo-label file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                content = {name: z[name] for name in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable pseudo-label .npz ({type(exc).__name__}: {exc})"
            ) from exc
        return cls(**_validated(path, content))


def _validated(path: Path, content: dict) -> dict:
    """Check every entry's presence, dtype and shape; return the constructor arguments."""
    expected = ["format", *_SCALARS, *_ARRAYS, *_DIAGNOSTICS]
    missing = [name for name in expected if name not in content]
    if missing:
        raise DataError(f"{path}: pseudo-label file lacks {missing} (expected {expected})")
    tag = content["format"]
    if tag.shape != () or str(tag) != FORMAT:
        raise DataError(f"{path}: format tag {tag!r} is not {FORMAT!r}")
    out = {}
    for name, dtype in _SCALARS.items():
        value = content[name]
        if value.shape != () or value.dtype != np.dtype(dtype):
            raise DataError(
                f"{path}: {name!r} must be a {dtype} scalar, got {value.dtype} {value.shape}"
            )
        out[name] = value.item()
    sizes: dict[str, int] = {"2": 2}
    if content["indices"].ndim == 1:
        sizes["N"] = len(content["indices"])
    if content["keypoints"].ndim == 3:
        sizes["K"] = content["keypoints"].shape[1]
    for name, (dtype, dims) in _ARRAYS.items():
        value = content[name]
        want = tuple(sizes.get(d, -1) for d in dims)
        if value.dtype != np.dtype(dtype) or value.shape != want:
            raise DataError(
                f"{path}: {name!r} must be {dtype} of shape {want} ({' x '.join(dims)})"
                f", got {value.dtype} {value.shape}"
            )
        out[name] = value
    names, values = content["diagnostic_names"], content["diagnostic_values"]
    if (
        names.dtype.kind != "U"
        or names.ndim != 1
        or values.dtype != np.float64
        or values.shape != names.shape
    ):
        raise DataError(
            f"{path}: diagnostics must be a str array of names and a float64 array "
            f"of values of one length, got {names.dtype} {names.shape} and "
            f"{values.dtype} {values.shape}"
        )
    out["diagnostics"] = {str(n): float(v) for n, v in zip(names, values, strict=True)}
    if len(np.unique(out["indices"])) != len(out["indices"]) or (out["indices"] < 0).any():
        raise DataError(f"{path}: 'indices' must be distinct non-negative dataset indices")
    if not np.isin(out["hits"], (NO_ANNOTATION, 0, 1)).all():
        raise DataError(f"{path}: 'hits' must hold only -1, 0 or 1")
    for name in _PROVENANCE:
        value = content.get(name)
        if value is not None and (value.shape != () or value.dtype.kind != "U"):
            raise DataError(
                f"{path}: {name!r} must be a str scalar, got {value.dtype} {value.shape}"
            )
    out["weights"] = str(content["weights"]) if "weights" in content else None
    out["settings"] = None
    if "settings" in content:
        try:
            out["settings"] = json.loads(str(content["settings"]))
        except ValueError as exc:
            raise DataError(f"{path}: 'settings' is not JSON ({exc})") from None
        if not isinstance(out["settings"], dict):
            raise DataError(f"{path}: 'settings' must be a JSON object")
    return out


def hit_fraction(mask: np.ndarray, hits: np.ndarray) -> float:
    """Fraction of right labels (``hits`` 1) among the judged ones (not -1) where ``mask``;
    NaN when none is judged."""
    judged = mask & (hits != NO_ANNOTATION)
    return float((hits[judged] == 1).mean()) if judged.any() else float("nan")


def confidence_auc(confidence: np.ndarray, hits: np.ndarray) -> float:
    """How well confidence tells right labels from wrong ones: the probability that a right
    judged label (``hits`` 1) has a higher confidence than a wrong one (``hits`` 0), ties
    counted half (the ROC AUC; 0.5 = no better than chance). NaN without both kinds."""
    judged = hits != NO_ANNOTATION
    right = hits[judged] == 1
    n_right = int(right.sum())
    n_wrong = right.size - n_right
    if n_right == 0 or n_wrong == 0:
        return float("nan")
    ranks = rankdata(confidence[judged].astype(np.float64))  # ties share their mean rank
    return float((ranks[right].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def pck_diagnostics(hits: np.ndarray, selected: np.ndarray, substituted: np.ndarray) -> dict:
    """``pck_all``, ``pck_selected`` (hit fractions of the judged labels, all / selected),
    ``kept_share`` and ``substituted`` (count) of (N, K) ``hits``, ``selected``, ``substituted``."""
    return {
        "pck_all": hit_fraction(np.ones(hits.shape, dtype=bool), hits),
        "pck_selected": hit_fraction(selected, hits),
        "kept_share": float(selected.mean()) if selected.size else float("nan"),
        "substituted": float(substituted.sum()),
    }

"""Score an existing COCO keypoint results file, no model needed.

``python evaluation/test.py --ann ANNOTATIONS.json --results RESULTS.json -c OUT`` (the script
sends any command line with ``--results`` here) runs pycocotools' ``COCOeval(..., "keypoints")`` on
the results of any toolkit, prints ``COCOeval``'s table and a one-line AP row, and writes
``OUT/oks_results.json``: the ten statistics under their usual names (AP, AP50, AP75, APm, APl, AR,
AR50, AR75, ARm, ARl) beside the files scored. Bad input (a missing or invalid file, results on
images the annotations do not have, malformed entries) ends with one line naming the file, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.keypoints import SPECS
from animalpose.evaluation.oks import STAT_NAMES, KeypointEval, load_json, run_keypoint_eval
from animalpose.evaluation.report import check_output_folder, output_errors

__all__ = ["RESULTS_FLAG", "OKS_RESULTS_JSON", "wants_scoring", "oks_row", "score_main"]

#: The flag that turns ``evaluation/test.py`` into the results-file scorer.
RESULTS_FLAG = "--results"
#: What the scorer writes into the ``-c`` folder.
OKS_RESULTS_JSON = "oks_results.json"
#: Exit status of a bad input, as the other entry points (``train/cli.py``).
EXIT_BAD_INPUT = 2


def wants_scoring(argv: Sequence[str]) -> bool:
    """Whether an ``evaluation/test.py`` command line scores a results file (has ``--results``)."""
    return any(a == RESULTS_FLAG or a.startswith(RESULTS_FLAG + "=") for a in argv)


def oks_row(stats: dict[str, float]) -> str:
    """The ten statistics as a two-line table in percent (``n/a`` where COCOeval gave -1)."""
    cells = [("n/a" if stats[n] < 0 else f"{100 * stats[n]:.1f}") for n in STAT_NAMES]
    widths = [max(len(n), len(c)) for n, c in zip(STAT_NAMES, cells)]
    header = " | ".join(n.rjust(w) for n, w in zip(STAT_NAMES, widths))
    return header + "\n" + " | ".join(c.rjust(w) for c, w in zip(cells, widths))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluation/test.py",
        description="Score a COCO-format keypoint results file with pycocotools' COCOeval (OKS "
        "AP, no model): prints the table and writes OUT/oks_results.json.",
    )
    parser.add_argument("--ann", required=True, help="COCO keypoint annotations json")
    parser.add_argument(
        RESULTS_FLAG,
        required=True,
        help="COCO keypoint results json: a list of {image_id, category_id, keypoints "
        "[x, y, score] * K, score}",
    )
    parser.add_argument("-c", "--checkpoint", required=True, help="folder for oks_results.json")
    parser.add_argument(
        "--spec",
        default=None,
        help="keypoint spec whose OKS sigmas to use (default: COCO's 17 sigmas)",
    )
    return parser


def _score(ns: argparse.Namespace) -> KeypointEval:
    spec = None
    if ns.spec is not None:
        with_sigmas = sorted(name for name, s in SPECS.items() if s.sigmas is not None)
        if ns.spec not in with_sigmas:
            raise DataError(
                f"--spec {ns.spec!r}: not a keypoint spec with OKS sigmas; choose one of "
                f"{with_sigmas}"
            )
        spec = SPECS[ns.spec]
    out = check_output_folder(ns.checkpoint)
    results = load_json(ns.results, "results json")
    evaluation = run_keypoint_eval(ns.ann, results, spec=spec, results_name=str(ns.results))
    doc = {
        **evaluation.stats,
        "annotations": str(Path(ns.ann).resolve()),
        "results": str(Path(ns.results).resolve()),
        "spec": ns.spec,
        "sigmas": list(evaluation.sigmas),
        "num_images": evaluation.num_images,
        "num_results": evaluation.num_results,
        "metric": "pycocotools COCOeval iouType=keypoints (OKS), maxDets 20; -1: nothing to "
        "average (COCOeval's marker)",
    }
    path = out / OKS_RESULTS_JSON
    with output_errors(out), atomic_write(path, "w") as f:
        f.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return evaluation


def score_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the scorer; returns the exit status (0, or 2 on bad input)."""
    ns = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        evaluation = _score(ns)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"OKS keypoint AP (pycocotools COCOeval) of {ns.results} against {ns.ann}: "
        f"{evaluation.num_results} results on {evaluation.num_images} images, sigmas of "
        f"{ns.spec or 'COCO (17 keypoints)'}; boxes: those of the run that wrote the results"
    )
    print(evaluation.summary)
    print(oks_row(evaluation.stats))
    print(f"wrote {Path(ns.checkpoint) / OKS_RESULTS_JSON}")
    return 0

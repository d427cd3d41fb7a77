"""Human top-down comparisons on the built-in humans, N seeds, with the toolkit's two entry points.

    python datasets/generate.py --benchmark humans-v1-cpu --image-path human_data
    python benchmarks/human_topdown.py --experiment codecs --seeds 0 1 2
    python benchmarks/human_topdown.py --experiment models --seeds 0 1 2
    python benchmarks/human_topdown.py --experiment methods --seeds 0 1 2

Each row trains ``configs/human_cpu.yaml`` with the row's overrides (``train/train.py``), then
scores its ``model_best.pth.tar`` on the test split with the flip test (``evaluation/test.py
--evaluate -f``, ground-truth boxes) and reads ``eval_test/oks_results.json`` (COCOeval AP) and
``pck_results.json`` (precise PCK@0.05). A row whose test scores exist is read, not rerun; a
killed training run continues from its ``checkpoint.pth.tar``. Writes ``human_<experiment>.md``
and ``.json`` to ``--out``: mean +- std over seeds, parameters, GFLOPs of one crop, the training
wall time and ``L/R``: how often a left/right keypoint's heatmap is higher at its own ground-truth
location than at its partner's, over test crops where both are labelled at least 3 heatmap pixels
apart (``left_right_separation``; 50 % = the two channels are the same map, 100 % = every pair
told apart; not measured for the bottom-up row).

Some rows only evaluate another row's trained weights differently (``EVAL_ONLY``: LPN's
beta-soft-argmax decode on the argmax run's weights, detector boxes instead of ground-truth
boxes); they are scored into ``eval_test_<row>`` beside that run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from animalpose.datasets.formats.coco_layout import build_topdown_dataset
from animalpose.datasets.formats.registry import is_bottomup
from animalpose.datasets.keypoints import SPECS
from animalpose.train.build import build_network, build_normalizer, input_size
from animalpose.train.checkpoint import load_model_weights
from animalpose.train.config_io import load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "human_cpu.yaml"

#: experiment -> row name -> config overrides (on top of configs/human_cpu.yaml).
EXPERIMENTS: dict[str, dict[str, list[str]]] = {
    # One model (SimpleBaseline-R18, 128x96 input, 32x24 heatmaps), three codecs.
    "codecs": {
        "msra": ["data.codec=msra"],
        "dark": ["data.codec=dark"],
        "udp": ["data.codec=udp"],
    },
    # Trunks at the same input, codec and budget (MSRA; R18's row is the codecs' msra row).
    "models": {
        "simple_baseline_r18": ["data.codec=msra"],
        "simple_baseline_r50": ["data.codec=msra", "model.depth=50"],
        "hrnet_w32": ["data.codec=msra", "model.arch=hrnet", "model.width=32"],
    },
    # The seed methods at the same input, codec and budget; OHKM top-8 as CPN and MSPN train it.
    # MSPN and RSN at CPU size (2 stages of ResNet-18; 1 RSN-18 stage + the pose refine machine).
    "methods": {
        "simple_baseline_r18": ["data.codec=msra"],
        "simple_baseline_r18_detections": [],
        "simple_baseline_r18_ohkm": ["data.codec=msra", "optim.ohkm_topk=8"],
        "lpn_50": ["data.codec=msra", "model.arch=lpn", "model.depth=50"],
        "lpn_50_soft_argmax": [],
        # LPN's GC-block ablation: the same lightweight trunk without attention.
        "lpn_50_no_gc": [
            "data.codec=msra",
            "model.arch=lpn",
            "model.depth=50",
            "model.attention=none",
        ],
        "cpn_r18": ["data.codec=msra", "model.arch=cpn", "model.depth=18"],
        "cpn_r18_ohkm": [
            "data.codec=msra",
            "model.arch=cpn",
            "model.depth=18",
            "optim.ohkm_topk=8",
        ],
        "mspn_2x18_ohkm": [
            "data.codec=msra",
            "model.arch=mspn",
            "model.stacks=2",
            "model.depth=18",
            "optim.ohkm_topk=8",
        ],
        "mspn_2x18": ["data.codec=msra", "model.arch=mspn", "model.stacks=2", "model.depth=18"],
        "rsn_18": ["data.codec=msra", "model.arch=rsn", "model.stacks=1", "model.depth=18"],
        # Bottom-up AE on HRNet-W32 (whole images, the longer side at 256 px, HigherHRNet's
        # rotation), scored without boxes against the top-down rows with detector boxes.
        "associative_w32": [
            "data.dataset=coco_bottomup",
            "model.arch=associative",
            "model.width=32",
            "data.inp_res=256",
            "data.inp_width=0",
            "data.out_res=64",
            "data.rot_factor=30",
            "data.train_batch=16",
        ],
    },  # fmt: skip
}
#: Rows that are the same run in two experiments (one training serves both).
SHARED_RUNS = {
    ("models", "simple_baseline_r18"): ("codecs", "msra"),
    ("methods", "simple_baseline_r18"): ("codecs", "msra"),
}
#: Rows that score another row's weights with other evaluation settings: row -> (the trained
#: row, evaluation overrides). Their L/R figure is the trained row's (it reads no decode).
EVAL_ONLY: dict[tuple[str, str], tuple[tuple[str, str], list[str]]] = {
    ("methods", "simple_baseline_r18_detections"): (("codecs", "msra"), ["data.detections=auto"]),
    ("methods", "lpn_50_soft_argmax"): (("methods", "lpn_50"), ["data.codec=soft-argmax"]),
}
AP_KEYS = ("AP", "AP50", "AP75", "AR")


def run_dir(out: Path, experiment: str, row: str, seed: int) -> Path:
    """The training run folder of a row (an evaluation-only row's trained row)."""
    key = EVAL_ONLY.get((experiment, row), ((experiment, row), []))[0]
    experiment, row = SHARED_RUNS.get(key, key)
    return out / experiment / row / f"seed{seed}"


def eval_dir(out: Path, experiment: str, row: str, seed: int) -> Path:
    """Where a row's test scores are written."""
    name = f"eval_test_{row}" if (experiment, row) in EVAL_ONLY else "eval_test"
    return run_dir(out, experiment, row, seed) / name


def _call(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def train_and_test(
    folder: Path,
    overrides: list[str],
    seed: int,
    extra: list[str],
    *,
    scores_dir: Path | None = None,
    eval_overrides: list[str] = (),
) -> float:
    """Train (or continue) then test one run into ``scores_dir`` (default ``folder/eval_test``)
    with ``eval_overrides``; a run already trained is only tested. Returns training wall
    seconds."""
    scores_dir = scores_dir or folder / "eval_test"
    timing = folder / "timing.json"
    if (scores_dir / "oks_results.json").is_file():
        return json.loads(timing.read_text())["train_seconds"]
    if timing.is_file():
        seconds = json.loads(timing.read_text())["train_seconds"]
    else:
        seconds = _train(folder, overrides, seed, extra)
    _call(
        [
            sys.executable,
            "evaluation/test.py",
            "--evaluate",
            "-f",
            "--no-progress",
            "--config",
            str(folder / "config.yaml"),
            "--eval-split",
            "test",
            "--resume",
            str(folder / "model_best.pth.tar"),
            "-c",
            str(scores_dir),
            "--set",
            "run.cpu_amp=true",
            *eval_overrides,
        ]
    )
    return seconds


def _train(folder: Path, overrides: list[str], seed: int, extra: list[str]) -> float:
    """Train (or continue) one run; records and returns its wall seconds."""
    sets = [*overrides, f"run.seed={seed}", "run.cpu_amp=true", *extra]
    cmd = [sys.executable, "train/train.py", "--config", str(CONFIG), "-c", str(folder)]
    if (folder / "checkpoint.pth.tar").is_file():
        cmd += ["--resume", str(folder / "checkpoint.pth.tar")]
    start = time.perf_counter()
    _call([*cmd, "--no-progress", "--set", *sets])
    seconds = time.perf_counter() - start
    (folder / "timing.json").write_text(json.dumps({"train_seconds": seconds}))
    return seconds


def model_size(folder: Path) -> tuple[float, float]:
    """(parameters in millions, GFLOPs of one crop; a multiply-add counts as 2 FLOPs)."""
    cfg = load_config(folder / "config.yaml")
    net = build_network(cfg, SPECS[cfg.model.keypoint_spec], torch.device("cpu")).eval()
    params = sum(p.numel() for p in net.parameters()) / 1e6
    x = torch.zeros(1, 3, cfg.data.inp_res, cfg.data.inp_width or cfg.data.inp_res)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return params, counter.get_total_flops() / 1e9


def bottomup(folder: Path) -> bool:
    """Whether the run in ``folder`` is bottom-up (whole images: no crops for ``L/R``)."""
    return is_bottomup(load_config(folder / "config.yaml").data.dataset)


#: Pairs closer than this (heatmap pixels) are not scored by ``left_right_separation``.
LR_MIN_DISTANCE = 3.0


@torch.no_grad()
def left_right_separation(folder: Path, *, split: str = "test", batch: int = 64) -> float:
    """Percent of (crop, left/right pair) cases, both keypoints labelled and at least
    ``LR_MIN_DISTANCE`` heatmap pixels apart, where each channel of the pair (last stage of
    ``model_best.pth.tar``, no flip test) is higher at its own keypoint's rounded heatmap cell
    than at its partner's; each channel of a pair counts once."""
    cfg = load_config(folder / "config.yaml")
    spec = SPECS[cfg.model.keypoint_spec]
    net = build_network(cfg, spec, torch.device("cpu")).eval()
    load_model_weights(net, folder / "model_best.pth.tar")
    data = build_topdown_dataset(
        root=cfg.data.image_path, split=split, input_size=input_size(cfg), spec=spec, seed=0,
        augment=False, scale_factor=0.0, rot_factor=0.0, limit=0, detections="", det_score=0.0,
        unbiased=cfg.data.codec == "udp",
    )  # fmt: skip
    normalize = build_normalizer(cfg)
    pairs = [(spec.index(a), spec.index(b)) for a, b in spec.flip_pairs]
    wins = total = 0
    for start in range(0, len(data), batch):
        samples = [data[i] for i in range(start, min(start + batch, len(data)))]
        images = torch.stack([s["image"] for s in samples])
        keypoints = torch.stack([s["keypoints"] for s in samples])
        maps = net(normalize(images))[-1].float()
        h, w = maps.shape[-2:]
        stride = torch.tensor([images.shape[-1] / w, images.shape[-2] / h])
        cells = (keypoints[..., :2] / stride).round().long()
        cells[..., 0].clamp_(0, w - 1)
        cells[..., 1].clamp_(0, h - 1)
        for a, b in pairs:
            both = (keypoints[:, a, 2] > 0) & (keypoints[:, b, 2] > 0)
            apart = (cells[:, a] - cells[:, b]).float().norm(dim=-1) >= LR_MIN_DISTANCE
            for i in torch.nonzero(both & apart).flatten().tolist():
                for own, other in ((a, b), (b, a)):
                    at = maps[i, own]
                    wins += int(
                        at[cells[i, own, 1], cells[i, own, 0]]
                        > at[cells[i, other, 1], cells[i, other, 0]]
                    )
                    total += 1
    return 100.0 * wins / max(total, 1)


def _mean_std(values: list[float | None]) -> str:
    """``mean ± std`` over seeds; a dash where the figure does not exist (PCK with detector
    boxes, which are not matched to labelled people)."""
    if any(v is None for v in values):
        return "—"
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", help="only these rows (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/human_bench"))
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra overrides for every run (KEY=VALUE)"
    )
    args = parser.parse_args(argv)
    rows = EXPERIMENTS[args.experiment]
    unknown = set(args.rows or ()) - set(rows)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; valid: {sorted(rows)}")
    results = {}
    order = args.rows or list(rows)
    for row in order:
        key = (args.experiment, row)
        (trained_experiment, trained_row), eval_overrides = EVAL_ONLY.get(key, (key, []))
        overrides = EXPERIMENTS[trained_experiment][trained_row]
        per_seed = []
        for seed in args.seeds:
            folder = run_dir(args.out, args.experiment, row, seed)
            scores = eval_dir(args.out, args.experiment, row, seed)
            seconds = train_and_test(
                folder, overrides, seed, args.set, scores_dir=scores, eval_overrides=eval_overrides
            )
            oks = json.loads((scores / "oks_results.json").read_text())
            pck_file = scores / "pck_results.json"  # bottom-up runs write no PCK
            pck = json.loads(pck_file.read_text()) if pck_file.is_file() else None
            per_seed.append(
                {
                    "seed": seed,
                    **{k: 100 * oks[k] for k in AP_KEYS},
                    "pck": pck["metrics"]["precise"]["mean"] if pck else None,
                    "left_right": None if bottomup(folder) else left_right_separation(folder),
                    "train_seconds": seconds,
                    "folder": str(folder),
                }
            )
        params, gflops = model_size(Path(per_seed[0]["folder"]))
        results[row] = {
            "overrides": overrides,
            "eval_overrides": eval_overrides,
            "params_m": params,
            "gflops": gflops,
            "seeds": per_seed,
        }
    lines = [
        f"Human top-down, experiment `{args.experiment}`: configs/human_cpu.yaml + the row's "
        f"overrides + {' '.join(args.set) or 'nothing else'}, seeds {args.seeds}; test split, "
        "ground-truth boxes, flip test. AP/AR: COCOeval x 100; PCK: precise PCK@0.05 (%); "
        "L/R: left/right separation (%, 50 = the pair's channels are one map); "
        "mean ± std over seeds.",
        "",
        "| row | params (M) | GFLOPs | AP | AP50 | AP75 | AR | PCK | L/R | train s/run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row, r in results.items():
        s = r["seeds"]
        cells = [_mean_std([x[k] for x in s]) for k in (*AP_KEYS, "pck", "left_right")]
        wall = statistics.mean(x["train_seconds"] for x in s)
        lines.append(
            f"| {row} | {r['params_m']:.2f} | {r['gflops']:.2f} | {' | '.join(cells)} | "
            f"{wall:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"human_{args.experiment}.md").write_text(text)
    (args.out / f"human_{args.experiment}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

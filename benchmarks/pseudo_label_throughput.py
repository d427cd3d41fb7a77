"""Pseudo-labelling throughput: ms per image for prediction (views) and for optical flow.

    python benchmarks/pseudo_label_throughput.py --device cuda --stacks 4 --channels 256 \\
        --batch 32 --workers 14 --flow-workers 14 [--amp]
    python benchmarks/pseudo_label_throughput.py --image-path animal_data --animal horse \\
        --checkpoint checkpoint/model_best.pth.tar --split train --device cuda

Without ``--image-path`` a TigDog-layout fixture is written to a temporary folder; the model is
the checkpoint's or a random hourglass. ``generate_pseudo_labels`` runs ``--repeat`` times (the
first warms up) and the last run is reported: prediction and flow ms per image, the peak resident
memory of this process and of its largest child (loader / flow workers), and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from animalpose.adapt.pseudo_labels import generate_pseudo_labels
from animalpose.adapt.temporal import FLOW_POOLS, TemporalConfig
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.formats.means import KNOWN_SYNTHETIC_MEANS
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.generator.fixtures import make_tigdog_fixture
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.train.build import build_codec
from animalpose.train.checkpoint import load_model_weights
from animalpose.train.config import Config
from animalpose.train.config_io import apply_overrides
from animalpose.train.models import build_model

#: Input statistics when the animal has no published synthetic mean (mid-grey, unit-ish std).
FALLBACK_MEAN_STD = ((0.45, 0.45, 0.45), (0.25, 0.25, 0.25))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data")
    data.add_argument("--image-path", default=None, help="data root (default: a temporary fixture)")
    data.add_argument("--animal", default="horse")
    data.add_argument("--split", default="all", help="TigDog split to pseudo-label")
    data.add_argument("--limit", type=int, default=0, help="first N samples only (0: all)")
    data.add_argument("--shots", type=int, default=8, help="fixture shots")
    data.add_argument("--frames-per-shot", type=int, default=25, help="fixture frames per shot")
    data.add_argument("--frame-size", type=int, nargs=2, default=(640, 360), metavar=("W", "H"))
    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default=None, help="weights (default: random model)")
    model.add_argument("--stacks", type=int, default=4)
    model.add_argument("--blocks", type=int, default=1)
    model.add_argument("--channels", type=int, default=256)
    model.add_argument("--inp-res", type=int, default=256)
    model.add_argument("--out-res", type=int, default=64)
    model.add_argument("--legacy-input", action="store_true", help="reference min-max input")
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    run.add_argument("--batch", type=int, default=32)
    run.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    run.add_argument("--flow-workers", type=int, default=None, help="default: --workers")
    run.add_argument("--flow-pool", default="thread", choices=sorted(FLOW_POOLS))
    run.add_argument("--views", type=int, default=4, help="random views besides the identity")
    run.add_argument("--no-flow", action="store_true", help="skip the temporal step")
    run.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    run.add_argument("--repeat", type=int, default=2, help="runs; the last one is reported")
    run.add_argument("--seed", type=int, default=0, help="random model weights and views")
    run.add_argument(
        "--json", default="", help="also write the figures of the last run to this JSON file"
    )
    return parser.parse_args(argv)


def peak_rss_mib() -> tuple[float, float]:
    """(this process, largest finished child process) peak resident set size in MiB (Linux
    reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    _, children_before = peak_rss_mib()  # importing torch may already have run a helper
    with tempfile.TemporaryDirectory(prefix="pseudo_label_bench_") as tmp:
        root = Path(args.image_path) if args.image_path else Path(tmp)
        if args.image_path is None:
            start = time.perf_counter()
            make_tigdog_fixture(
                root,
                animal=args.animal,
                num_shots=args.shots,
                frames_per_shot=args.frames_per_shot,
                seed=0,
                frame_size=tuple(args.frame_size),
            )
            w, h = args.frame_size
            print(
                f"fixture: {args.shots} shots x {args.frames_per_shot} frames of {w}x{h} in "
                f"{time.perf_counter() - start:.1f} s"
            )
        dataset = RealAnimal(
            root=root,
            animal=args.animal,
            split=args.split,
            augmenter=CenterCrop(args.inp_res),
            spec=ANIMAL18,
            seed=0,
            limit=args.limit,
        )
        torch.manual_seed(args.seed)
        model = build_model(
            "hg",
            num_stacks=args.stacks,
            num_blocks=args.blocks,
            num_keypoints=ANIMAL18.num_keypoints,
            channels=args.channels,
        )
        if args.checkpoint:
            load_model_weights(model, args.checkpoint)
        model.to(device)
        mean, std = KNOWN_SYNTHETIC_MEANS.get(args.animal, FALLBACK_MEAN_STD)
        normalizer = Normalizer(mean, std, legacy=args.legacy_input)
        sizes = [f"data.inp_res={args.inp_res}", f"data.out_res={args.out_res}"]
        codec = build_codec(apply_overrides(Config(), sizes, source="benchmark options"))
        temporal = None if args.no_flow else TemporalConfig()
        print(
            f"{len(dataset)} images, {args.inp_res} px crops, hg {args.stacks}x{args.channels}, "
            f"{args.views} + 1 views, batch {args.batch}, device {device}, amp {args.amp}, "
            f"workers {args.workers}, flow {args.flow_pool}s "
            f"{args.workers if args.flow_workers is None else args.flow_workers}"
        )
        for run in range(args.repeat):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            labels = generate_pseudo_labels(
                model,
                dataset,
                codec=codec,
                normalizer=normalizer,
                device=device,
                views=ViewSampler(num_views=args.views),
                seed=args.seed,
                temporal=temporal,
                batch_size=args.batch,
                workers=args.workers,
                amp=args.amp,
                progress=False,
                flow_workers=args.flow_workers,
                flow_pool=args.flow_pool,
            )
            total = time.perf_counter() - start
            n = len(labels)
            d = labels.diagnostics
            figures = {
                "images": n,
                "device": str(device),
                "batch": args.batch,
                "views_incl_identity": args.views + 1,
                "flow": temporal is not None,
                "amp_bf16": args.amp,
                "predict_ms_per_img": 1e3 * d["predict_seconds"] / n,
                "flow_ms_per_img": 1e3 * d["flow_seconds"] / n,
                "total_ms_per_img": 1e3 * total / n,
            }
            print(
                f"run {run + 1}/{args.repeat}: predict {1e3 * d['predict_seconds'] / n:7.2f} "
                f"ms/img, flow {1e3 * d['flow_seconds'] / n:6.2f} ms/img, total "
                f"{1e3 * total / n:7.2f} ms/img ({total:.1f} s), substituted "
                f"{int(d['substituted'])} of {labels.confidence.size}"
            )
        own, child = peak_rss_mib()
        print(
            f"peak host RSS: main process {own:.0f} MiB, largest finished child process "
            f"{child:.0f} MiB (before the runs: {children_before:.0f} MiB)"
        )
        figures.update(peak_rss_main_mib=own, peak_rss_child_mib=child)
        if device.type == "cuda":
            figures["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            print(f"peak GPU memory: {figures['peak_gpu_mib']:.0f} MiB")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

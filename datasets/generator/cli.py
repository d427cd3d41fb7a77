"""The generator's command line (``python datasets/generate.py``; ``--help`` lists the flags).

    python datasets/generate.py --image-path animal_data [--renderer dog|flat]
        [--source-images N] [--target-shots S] [--frames-per-shot F] [--size 640x480]
        [--processes P] [--seed 0] [--source-layout synthetic|tigdog] [--force] ...
    python datasets/generate.py --benchmark dogshift-v2[-cpu] --image-path animal_data
    python datasets/generate.py --benchmark humans-v1[-cpu] --image-path human_data

``--benchmark NAME`` takes counts, size, seed, layouts, breeds and covers from the spec in
``dogshift.BENCHMARKS`` (those flags are then refused) and writes the split files and
``benchmark.json`` after rendering. A human benchmark (``human.benchmarks.HUMAN_BENCHMARKS``)
writes COCO keypoint json and images straight into ``--image-path`` (docs/generator.md,
"Built-in humans"). Counts, layouts, breeds and covers: docs/generator.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from animalpose.datasets.generator.benchmark_splits import generate_benchmark
from animalpose.datasets.generator.dog.ground_cover import COVERS
from animalpose.datasets.generator.dog.shape import BREEDS
from animalpose.datasets.generator.dogshift import get_benchmark
from animalpose.datasets.generator.human.benchmarks import HUMAN_BENCHMARKS, generate_humans
from animalpose.datasets.generator.renderer import RENDERERS
from animalpose.datasets.generator.run import MAX_DEFAULT_PROCESSES, GenerationReport, generate
from animalpose.datasets.generator.settings import LAYOUTS, GeneratorSettings

__all__ = ["main"]

#: Exit status after Ctrl-C (128 + SIGINT, the shell convention).
INTERRUPTED_STATUS = 130


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT (e.g. 640x480), got {text!r}")
    return int(match.group(1)), int(match.group(2))


#: The flags that set what to generate, in ``--help`` order: option -> ``add_argument`` keywords
#: (``{d}`` in a help text: the ``GeneratorSettings`` defaults). They default to None so that a
#: given one can be told from an absent one; a benchmark's spec sets them instead.
_SPEC_FLAGS: dict[str, dict] = {
    "--source-images": {
        "type": int,
        "help": "source-style images, 0: none (default {d.source_images})",
    },
    "--target-shots": {
        "type": int,
        "help": "target-style shots, 0: none (default {d.target_shots})",
    },
    "--frames-per-shot": {
        "type": int,
        "help": "frames of every shot (default {d.frames_per_shot})",
    },
    "--size": {
        "type": _parse_size,
        "help": "frame size WIDTHxHEIGHT (default 640x480, the reference's)",
    },
    "--seed": {"type": int, "help": "default {d.seed}"},
    "--source-layout": {"choices": sorted(LAYOUTS), "help": "default {d.source_layout}"},
    "--target-layout": {"choices": sorted(LAYOUTS), "help": "default {d.target_layout}"},
    "--source-breed": {
        "choices": sorted(BREEDS),
        "help": "shape of the source dogs (default {d.source_breed})",
    },
    "--target-breed": {
        "choices": sorted(BREEDS),
        "help": "shape of the target dogs (default {d.target_breed})",
    },
    "--source-cover": {
        "choices": sorted(COVERS),
        "help": "ground cover of source scenes (default {d.source_cover})",
    },
    "--target-cover": {
        "choices": sorted(COVERS),
        "help": "ground cover of target scenes (default {d.target_cover})",
    },
}


def _dest(option: str) -> str:
    """The ``argparse`` attribute of ``option`` (``--source-images`` -> ``source_images``)."""
    return option.removeprefix("--").replace("-", "_")


def _parser(defaults: GeneratorSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Render the built-in synthetic animal data into the reference's layouts: "
        "source style -> synthetic_animal/, target style -> behaviorDiscovery2.0/ (by default). "
        "Rerun the same command to resume."
    )
    parser.add_argument("--image-path", default="./animal_data", help="data root to write into")
    parser.add_argument(
        "--benchmark",
        default=None,
        metavar="NAME",
        help="generate a named benchmark (animalpose.datasets.generator.dogshift."
        "BENCHMARKS, e.g. dogshift-v2, dogshift-v2-cpu) and write its "
        "train/valid/test splits, or a human one (human.benchmarks.HUMAN_BENCHMARKS: "
        "humans-v1, humans-v1-cpu) as COCO keypoint json in --image-path; the flags "
        "below that set counts, size, seed or layouts are then refused",
    )
    parser.add_argument(
        "--renderer",
        choices=sorted(RENDERERS),
        default=None,
        help=f"renderer (default {defaults.renderer}, or the benchmark's)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help=f"worker processes (default min(CPUs, {MAX_DEFAULT_PROCESSES}), about 1 GB RAM each)",
    )
    for option, keywords in _SPEC_FLAGS.items():
        parser.add_argument(
            option, **{**keywords, "help": keywords["help"].format(d=defaults)}, default=None
        )
    parser.add_argument(
        "--force", action="store_true", help="write into folders generated with other settings"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _summary(report: GenerationReport) -> dict:
    rate = report.images / report.seconds if report.seconds > 0 else 0.0
    return {
        "jobs_written": report.written,
        "jobs_skipped": report.skipped,
        "images": report.images,
        "seconds": round(report.seconds, 1),
        "images_per_s": round(rate, 1),
        "stray_temp_removed": report.removed_temp,
    }


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    defaults = GeneratorSettings(root=Path("."))
    parser = _parser(defaults)
    args = parser.parse_args(argv)
    given = [option for option in _SPEC_FLAGS if getattr(args, _dest(option)) is not None]
    if args.benchmark is not None and given:
        parser.error(
            f"--benchmark {args.benchmark} sets the counts, size, seed, layouts, breeds and "
            "covers; "
            f"drop {', '.join(given)} (or generate without --benchmark)"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    extra: dict = {}
    try:
        if args.benchmark in HUMAN_BENCHMARKS:
            if args.renderer is not None:
                parser.error(f"--benchmark {args.benchmark} renders people; drop --renderer")
            report, extra = generate_humans(
                HUMAN_BENCHMARKS[args.benchmark],
                args.image_path,
                processes=args.processes,
                force=args.force,
                progress=not args.no_progress,
            )
        elif args.benchmark is not None:
            try:
                spec = get_benchmark(args.benchmark)
            except KeyError as exc:
                parser.error(f"{exc.args[0]}; human benchmarks: {sorted(HUMAN_BENCHMARKS)}")
            report, record = generate_benchmark(
                spec,
                args.image_path,
                renderer=args.renderer,
                processes=args.processes,
                force=args.force,
                progress=not args.no_progress,
            )
            extra = {
                "benchmark": record["name"],
                "version": record["version"],
                "renderer": record["renderer"],
                "official": record["official"],
                "split_frames": {k: v["frames"] for k, v in record["splits"].items()},
                "split_shots": {k: len(v["shots"]) for k, v in record["splits"].items()},
            }
        else:
            values = {
                _dest(option): getattr(args, _dest(option))
                for option in _SPEC_FLAGS
                if getattr(args, _dest(option)) is not None
            }
            settings = GeneratorSettings(
                root=Path(args.image_path), renderer=args.renderer or defaults.renderer, **values
            )
            report = generate(
                settings, processes=args.processes, force=args.force, progress=not args.no_progress
            )
    except BrokenProcessPool:  # a RuntimeError: a worker was killed, e.g. by the OOM killer
        parser.exit(
            2,
            "error: a render worker process died (killed, or out of memory: lower --processes);"
            " complete samples are kept: run the same command again to resume\n",
        )
    except (ValueError, RuntimeError, TypeError) as exc:  # DataError is a ValueError
        parser.exit(2, f"error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(
            INTERRUPTED_STATUS,
            "interrupted: complete samples are kept; run the same command again to resume\n",
        )
    print(json.dumps({**_summary(report), **extra}))
    return 0

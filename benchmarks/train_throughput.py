"""Training throughput: model-only vs end-to-end img/s, same model, same batch.

    python benchmarks/train_throughput.py --device cuda --stacks 4 --batch 32 --workers 14
    python benchmarks/train_throughput.py --human --arch hrnet --inp-res 256 --device cuda

Model-only feeds random uint8 crops and keypoints that already sit on the device (the ceiling);
end-to-end reads the synthetic layout at 640x480 (``--human``: the COCO layout under
``--data-root``, e.g. the built-in humans; w:h = 3:4 crops) through the real dataset,
augmentation and loader; an empty --human folder gets 640x480 noise JPEGs with two people each
(decoding cost as COCO's). Both run the same training step (normalise, encode heatmaps,
forward, loss, backward, step). Also prints evaluation img/s, peak host RAM over all processes
(main + workers) and peak GPU memory. Data is generated in the reference's synthetic layout if
the folder lacks it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import torch

from animalpose.datasets.generator.fixtures import make_coco_fixture, make_synthetic_fixture
from animalpose.train.build import model_description
from animalpose.train.config import Config
from animalpose.train.config_io import apply_overrides, load_config
from animalpose.train.trainer import Trainer


def _pss_bytes(pid: str) -> int:
    """Proportional set size: shared pages (torch's libraries in every worker) counted once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no Pss line for pid {pid}")


class HostMemory:
    """Samples the summed PSS of this process and all its descendants (Linux /proc)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tree_pss(self) -> int:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        total, stack = 0, [os.getpid()]
        while stack:
            pid = stack.pop()
            try:
                total += _pss_bytes(str(pid))
            except (OSError, ValueError):
                pass
            stack.extend(children.get(pid, []))
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_pss())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(trainer: Trainer, *, batch: int, iters: int, warmup: int) -> float:
    cfg, dev = trainer.cfg, trainer.device
    h, w, k = cfg.data.inp_res, cfg.data.inp_width or cfg.data.inp_res, trainer.spec.num_keypoints
    size = torch.tensor([w, h], device=dev)
    fake = {
        "image": torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, device=dev),
        "keypoints": torch.cat(
            [torch.rand(batch, k, 2, device=dev) * size, torch.ones(batch, k, 1, device=dev)], -1
        ),
    }
    codec = trainer.codec
    trainer.net.train()
    for _ in range(warmup):
        trainer.step(fake, codec)
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        trainer.step(fake, codec)
    _sync(dev)
    return batch * iters / (time.perf_counter() - t0)


def end_to_end(trainer: Trainer, *, iters: int, warmup: int, train_step: bool = True) -> float:
    """img/s of the real loader feeding the training step (``train_step=False``: loader alone)."""
    codec = trainer.codec
    trainer.net.train()
    loader, epoch, done, t0 = trainer.train_loader, 0, 0, 0.0
    images = 0
    while done < warmup + iters:
        loader.sampler.set_epoch(epoch)
        trainer.train_set.set_epoch(epoch)
        for batch in loader:
            if done == warmup:
                _sync(trainer.device)
                t0, images = time.perf_counter(), 0
            if train_step:
                trainer.step(batch, codec)
            images += batch["image"].shape[0]
            done += 1
            if done >= warmup + iters:
                break
        epoch += 1
    _sync(trainer.device)
    return images / (time.perf_counter() - t0)


def describe_model(cfg: Config) -> str:
    d = cfg.data
    return f"{model_description(cfg)} input={d.inp_width or d.inp_res}x{d.inp_res} (w x h)"


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="synthetic layout (generated if absent; default animal_data/bench), or with "
        "--human a COCO-layout folder (default human_data)",
    )
    p.add_argument(
        "--human",
        action="store_true",
        help="top-down human data (configs/human_cpu.yaml's recipe) instead of the animals",
    )
    p.add_argument("--arch", default=None, help="model (default hg; --human: simple_baseline)")
    p.add_argument("--depth", type=int, default=50, help="simple_baseline ResNet depth")
    p.add_argument("--width", type=int, default=32, help="hrnet width")
    p.add_argument("--inp-width", type=int, default=0, help="crop width (0: square)")
    p.add_argument("--num-images", type=int, default=600)
    p.add_argument("--device", default="auto")
    p.add_argument("--stacks", type=int, default=4)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--inp-res", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--backend", default="fused", choices=["fused", "imgaug"])
    p.add_argument("--no-amp", action="store_true")
    p.add_argument(
        "--cpu-amp", action="store_true", help="bf16 autocast on a CPU with AMX / AVX-512 BF16"
    )
    p.add_argument("--blocks", type=int, default=1)
    p.add_argument("--model-only", action="store_true", help="only the model-only figure")
    p.add_argument(
        "--repeat", type=int, default=1, help="time model-only this many times, keep the best"
    )
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--no-channels-last", action="store_true", help="contiguous NCHW instead of channels_last"
    )
    p.add_argument("--flip", action="store_true", help="flip test in the evaluation pass")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation pass")
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = p.parse_args()

    root = Path(args.data_root or ("human_data" if args.human else "animal_data/bench"))
    if args.human:
        if not (root / "annotations").is_dir():
            print(f"generating {args.num_images} COCO-layout noise images (640x480) in {root} ...")
            make_coco_fixture(root, images=args.num_images, scale=4, splits=("train", "val"))
        arch = args.arch or "simple_baseline"
        base = load_config(Path(__file__).resolve().parent.parent / "configs" / "human_cpu.yaml")
        data = [f"data.inp_width={args.inp_width or args.inp_res * 3 // 4}"]
        model = [f"model.arch={arch}", f"model.depth={args.depth}", f"model.width={args.width}"]
    else:
        if not any(root.glob("synthetic_animal/*/*img.png")):
            print(f"generating {args.num_images} synthetic-layout images (640x480) in {root} ...")
            make_synthetic_fixture(root, animal="horse", num_images=args.num_images, seed=0)
        arch = args.arch or "hg"
        base = Config()
        data = ["data.dataset=synthetic_animal_sp", "data.animal=horse"]
        data += [f"data.inp_width={args.inp_width}"]
        model = [
            f"model.arch={arch}",
            f"model.stacks={args.stacks}",
            f"model.channels={args.channels}",
            f"model.blocks={args.blocks}",
        ]
    cfg = apply_overrides(
        base,
        [
            *data,
            *model,
            f"data.image_path={root}",
            f"data.inp_res={args.inp_res}",
            f"data.out_res={args.inp_res // 4}",
            f"data.train_batch={args.batch}",
            f"data.test_batch={args.batch}",
            f"data.workers={args.workers}",
            f"data.augment_backend={args.backend}",
            f"run.device={args.device}",
            f"run.amp={str(not args.no_amp).lower()}",
            f"run.cpu_amp={str(args.cpu_amp).lower()}",
            f"run.compile={str(args.compile).lower()}",
            f"run.channels_last={str(not args.no_channels_last).lower()}",
            f"run.flip={str(args.flip).lower()}",
            "run.progress=false",
            "run.checkpoint=/tmp/bench",
        ],
    )
    figures: dict = {}

    def record(**new) -> None:
        """Add figures and rewrite ``--json`` (a run killed by a time limit keeps what it has)."""
        figures.update(new)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2))

    with HostMemory() as mem:
        trainer = Trainer(cfg)
        dev = trainer.device
        cuda = dev.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)

        def memory() -> dict:
            gpu = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None
            return {
                "peak_host_pss_gb_all_processes": round(mem.peak / 2**30, 2),
                "peak_gpu_mem_gb": None if gpu is None else round(gpu, 2),
            }

        record(
            device=torch.cuda.get_device_name(dev) if cuda else f"cpu x{torch.get_num_threads()}",
            model=describe_model(cfg),
            batch=args.batch,
            workers=args.workers,
            augment_backend=args.backend,
            amp_bf16=trainer.amp,
            channels_last=cfg.run.channels_last,
            compile=cfg.run.compile,
        )
        runs = [
            model_only(trainer, batch=args.batch, iters=args.iters, warmup=args.warmup * (i == 0))
            for i in range(max(1, args.repeat))
        ]
        mo = max(runs)  # the least disturbed run on a shared machine
        record(model_only_img_s=round(mo, 1), **memory())
        if len(runs) > 1:
            record(model_only_runs_img_s=[round(r, 1) for r in runs])
        if not args.model_only:
            e2e = end_to_end(trainer, iters=args.iters, warmup=args.warmup)
            record(
                end_to_end_img_s=round(e2e, 1), end_to_end_fraction=round(e2e / mo, 3), **memory()
            )
            lo = end_to_end(trainer, iters=args.iters, warmup=args.warmup, train_step=False)
            record(loader_only_img_s=round(lo, 1), **memory())
        if not (args.no_eval or args.model_only):
            t0 = time.perf_counter()
            val = trainer.validate()
            eval_rate = len(val.preds) / (time.perf_counter() - t0)
            record(eval_flip_test=cfg.run.flip, eval_img_s_incl_loader_start=round(eval_rate, 1))
    record(**memory())
    for k, v in figures.items():
        print(f"{k:>34}: {v}")


if __name__ == "__main__":
    main()

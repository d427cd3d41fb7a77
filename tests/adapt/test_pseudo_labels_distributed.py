"""generate_pseudo_labels on 2 processes (gloo, CPU) equals the single-process run."""

import socket
import textwrap

import numpy as np
import torch

from animalpose.adapt.pseudo_labels import PseudoLabels
from animalpose.adapt.temporal import TemporalConfig

#: Started by torch.multiprocessing from a script file, so that the children never depend on
#: this test module (imported with --import-mode=importlib, it cannot be re-imported by name).
#: The objects mirror the conftest fixtures (64-px crops, 16-px heatmaps, the tiny hourglass).
SCRIPT = textwrap.dedent("""
    import sys

    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from animalpose.adapt.pseudo_labels import generate_pseudo_labels
    from animalpose.adapt.temporal import TemporalConfig
    from animalpose.adapt.views import ViewSampler
    from animalpose.datasets.codecs.msra import MSRAHeatmap
    from animalpose.datasets.keypoints import ANIMAL18
    from animalpose.datasets.formats.tigdog import RealAnimal
    from animalpose.datasets.transforms.crop import CenterCrop
    from animalpose.datasets.transforms.normalize import Normalizer
    from animalpose.train.models import build_model


    def worker(rank, world, port, root, weights, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        try:
            dataset = RealAnimal(root=root, animal="horse", split="all", augmenter=CenterCrop(64),
                                 spec=ANIMAL18, seed=0)
            model = build_model("hg", num_stacks=1, num_blocks=1, num_keypoints=18, channels=8)
            model.load_state_dict(torch.load(weights, weights_only=True))
            labels = generate_pseudo_labels(
                model, dataset, codec=MSRAHeatmap((64, 64), (16, 16)),
                normalizer=Normalizer((0.45,) * 3, (0.25,) * 3), device="cpu",
                views=ViewSampler(), seed=1, temporal=TemporalConfig(max_move=60.0),
                batch_size=3, workers=0, progress=False)
            labels.save(f"{out}/rank{rank}.npz")
        finally:
            dist.destroy_process_group()


    if __name__ == "__main__":
        root, weights, out, port = sys.argv[1:]
        # fork: the children share this process's imports (a spawn re-imports torch per rank,
        # seconds each on a loaded 2-core machine); nothing has started a thread pool yet.
        mp.start_processes(worker, args=(2, int(port), root, weights, out), nprocs=2,
                           start_method="fork")
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one(
    tmp_path, tigdog, tiny_model, real_dataset, generate, run_script
):
    torch.save(tiny_model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "run.py").write_text(SCRIPT)
    args = (tigdog.root, tmp_path / "weights.pt", tmp_path, free_port())
    out = run_script(tmp_path / "run.py", *map(str, args), timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    single = generate(temporal=TemporalConfig(max_move=60.0), batch_size=3)
    ranks = [PseudoLabels.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    for name in ("indices", "shots", "frames", "keypoints", "confidence", "substituted"):
        np.testing.assert_array_equal(
            getattr(ranks[0], name), getattr(ranks[1], name), err_msg=name
        )  # every rank holds the same, full set
    labels = ranks[0]
    assert len(labels) == len(real_dataset)
    np.testing.assert_array_equal(labels.indices, single.indices)
    np.testing.assert_array_equal(labels.frames, single.frames)
    # Another process may block conv batches differently: float32 rounding only.
    np.testing.assert_allclose(labels.keypoints, single.keypoints, atol=1e-3)
    np.testing.assert_allclose(labels.confidence, single.confidence, atol=1e-5)
    np.testing.assert_array_equal(labels.substituted, single.substituted)
    assert single.substituted.any()  # the refinement ran (and was split at a shot boundary)

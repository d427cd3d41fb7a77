"""predict (flip test) and evaluate (both metrics, image-pixel predictions) on stub models."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.geometry import apply_affine, crop_matrix, invert_affine
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.evaluation import inference
from animalpose.evaluation.inference import (
    CPU_BF16_FLAGS,
    autocast,
    cpu_bf16_fast_path,
    crop_to_image,
    evaluate,
    flip_back,
    predict,
)

FLIP_INDEX = [1, 0, 3, 2, 4]  # K = 5: two left/right pairs and one unpaired keypoint
K = len(FLIP_INDEX)
INPUT, HEATMAP = 64, 32
STRIDE = INPUT / HEATMAP


class EquivariantConv(nn.Module):
    """Patchify conv (kernel = stride, no padding: pixel-area aligned) whose kernel for channel
    flip_index[k] is the mirror of channel k's, so model(flip(x)) == flip_back(model(x))."""

    def __init__(self, symmetric: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, K, kernel_size=4, stride=4, bias=False)
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(K, 3, 4, 4, generator=gen)
        if symmetric:
            for k, f in enumerate(FLIP_INDEX):
                if f > k:
                    w[f] = torch.flip(w[k], dims=(-1,))
                elif f == k:
                    w[k] = 0.5 * (w[k] + torch.flip(w[k], dims=(-1,)))
        self.conv.weight.data.copy_(w)
        self.seen_training: list[bool] = []

    def forward(self, x):
        self.seen_training.append(self.training)
        y = self.conv(x)
        return [0.5 * y, y]


class ConstantModel(nn.Module):
    def __init__(self, heatmaps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("heatmaps", heatmaps)

    def forward(self, x):
        return self.heatmaps.expand(x.shape[0], -1, -1, -1)


def test_predict_flip_test_is_identity_for_an_equivariant_model():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    model = EquivariantConv().double()
    model.train()
    plain = predict(model, x)
    flipped = predict(model, x, flip_index=FLIP_INDEX)
    assert plain.shape == (2, K, 4, 4)
    assert torch.allclose(plain, flipped, atol=1e-12)
    assert torch.allclose(plain, model.conv(x).float())  # the last stack
    assert model.training and model.seen_training == [False, False]  # eval inside, restored
    other = EquivariantConv(symmetric=False).double()
    assert not torch.allclose(predict(other, x), predict(other, x, flip_index=FLIP_INDEX))


def test_predict_flip_swaps_channels_and_mirrors():
    heat = torch.rand(1, K, 4, 6)
    out = predict(ConstantModel(heat), torch.zeros(3, 3, 16, 24), flip_index=FLIP_INDEX)
    h = heat[0].numpy()
    assert out.shape == (3, K, 4, 6)
    assert np.allclose(out[2, 0].numpy(), 0.5 * (h[0] + h[1][:, ::-1]))
    assert np.allclose(out[0, 3].numpy(), 0.5 * (h[3] + h[2][:, ::-1]))
    assert np.allclose(out[1, 4].numpy(), 0.5 * (h[4] + h[4][:, ::-1]))
    index = torch.tensor(FLIP_INDEX)
    assert torch.equal(flip_back(flip_back(heat, index), index), heat)


@pytest.mark.parametrize("fast", [True, False])
def test_autocast_on_a_cpu_is_bf16_only_with_amp_and_a_fast_path(monkeypatch, fast):
    monkeypatch.setattr(inference, "cpu_bf16_fast_path", lambda: fast)
    model, x = EquivariantConv(), torch.rand(2, 3, INPUT, INPUT)
    cpu = torch.device("cpu")
    with autocast(cpu, False):
        assert model(x)[-1].dtype == torch.float32
    with autocast(cpu, True):
        assert model(x)[-1].dtype == (torch.bfloat16 if fast else torch.float32)
    assert model.conv.weight.dtype == torch.float32
    # predict() hands float32 heatmaps back either way.
    assert predict(model, x, amp=True).dtype == torch.float32


def test_cpu_bf16_fast_path_falls_back_to_the_cpuinfo_flags(monkeypatch):
    with_torch = cpu_bf16_fast_path()
    cpu_bf16_fast_path.cache_clear()
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    try:
        from_cpuinfo = cpu_bf16_fast_path()
    finally:
        cpu_bf16_fast_path.cache_clear()
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert from_cpuinfo == bool(flags & set(CPU_BF16_FLAGS)) == with_torch


def test_crop_to_image_inverts_the_crop_matrix():
    # a rotation alone is not symmetric (a rotation + mirror is), so the transpose matters
    m = np.stack(
        [
            crop_matrix((120.0, 80.0), 150.0, (64, 64), rotation=25.0),
            crop_matrix((120.0, 80.0), 150.0, (64, 64), rotation=-40.0, flip=True),
            crop_matrix((10.0, 300.0), (90.0, 60.0), (64, 64)),
        ]
    )
    src = np.random.default_rng(0).uniform(0, 300, size=(3, K, 2))
    crop = np.stack([apply_affine(src[i], m[i]) for i in range(3)])
    back = crop_to_image(torch.from_numpy(crop).float(), torch.from_numpy(m))
    assert np.allclose(back.numpy(), src, atol=1e-3)
    assert np.allclose(invert_affine(m[0]) @ np.r_[crop[0, 0], 1.0], src[0, 0])


# -- evaluate on a fake loader -------------------------------------------------------------------

CODEC = MSRAHeatmap((INPUT, INPUT), (HEATMAP, HEATMAP), sigma=1.0)
IDENTITY = Normalizer(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _evaluate_on_cpu(model: nn.Module, batches: list[dict], **kwargs):
    """``evaluate`` with the test codec and no normalisation, on the CPU, no progress bar."""
    return evaluate(
        model, batches, codec=CODEC, normalizer=IDENTITY, device="cpu", progress=False, **kwargs
    )


def _image(sample_id: int) -> torch.Tensor:
    """uint8 crop carrying its sample id in both top corners (so a mirror keeps it) and an
    orientation marker (channel 1: 255 at the left corner, 0 at the right)."""
    img = torch.full((3, INPUT, INPUT), 128, dtype=torch.uint8)
    img[0, 0, 0] = img[0, 0, -1] = sample_id + 1
    img[1, 0, 0], img[1, 0, -1] = 255, 0
    return img


class LookupModel(nn.Module):
    """Returns the stored heatmaps of the sample whose id is in the image; for a mirrored image
    the mirrored heatmaps (flip_back is an involution), so it is exactly flip-equivariant."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.register_buffer("flip", torch.tensor(FLIP_INDEX))

    def forward(self, x):
        ids = torch.round(x[:, 0, 0, 0] * 255).long() - 1
        mirrored = x[:, 1, 0, 0] < 0.5
        hm = self.table[ids]
        hm = torch.where(mirrored[:, None, None, None], flip_back(hm, self.flip), hm)
        return [0.5 * hm, hm]


def _batches(samples: list[dict], sizes: list[int]) -> list[dict]:
    out, start = [], 0
    for n in sizes:
        chunk = samples[start : start + n]
        start += n
        out.append(
            {
                "image": torch.stack([s["image"] for s in chunk]),
                "keypoints": torch.stack([s["keypoints"] for s in chunk]),
                "meta": {
                    key: torch.stack([torch.as_tensor(s["meta"][key]) for s in chunk])
                    for key in chunk[0]["meta"]
                },
            }
        )
    return out


def _sample(i: int, kp_image: np.ndarray, center, size: float) -> dict:
    m = crop_matrix(center, size, (INPUT, INPUT))
    crop = apply_affine(kp_image, m)
    crop[crop[:, 2] <= 0, :2] = 0.0  # contract: missing keypoints have x = y = 0
    return {
        "image": _image(i),
        "keypoints": torch.from_numpy(crop).float(),
        "meta": {
            "matrix": torch.from_numpy(m),
            "size": torch.tensor([size, size], dtype=torch.float64),
            "keypoints_image": torch.from_numpy(kp_image),
            "index": torch.tensor(i),
        },
    }


def _perfect_table(samples: list[dict]) -> torch.Tensor:
    """(N, K, h, w) encoded targets of the samples: what a perfect model outputs."""
    return torch.stack(
        [CODEC.encode(s["keypoints"][:, :2], s["keypoints"][:, 2])[0] for s in samples]
    )


def _random_samples(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        center = rng.uniform(100, 300, size=2)
        size = float(rng.uniform(80, 200))
        xy = center + rng.uniform(-0.4, 0.4, size=(K, 2)) * size  # well inside the crop
        vis = (rng.uniform(size=K) > 0.25).astype(np.float64)
        samples.append(_sample(i, np.concatenate([xy, vis[:, None]], axis=1), center, size))
    return samples


@pytest.mark.parametrize("flip_index", [None, FLIP_INDEX])
def test_evaluate_perfect_model(flip_index):
    samples = _random_samples(7, seed=0)
    table = _perfect_table(samples)
    batches = _batches(samples, [3, 3, 1])
    batches = [batches[1], batches[0], batches[2]]  # rows come back sorted by index anyway
    result = _evaluate_on_cpu(LookupModel(table), batches, flip_index=flip_index)
    vis = np.stack([s["meta"]["keypoints_image"][:, 2].numpy() for s in samples]) > 0
    assert np.array_equal(result.indices, np.arange(7))
    assert np.array_equal(result.precise_counts, vis.sum(0))
    assert np.all(result.precise == 1.0) and np.all(result.legacy == 1.0)
    assert result.legacy_mean == 1.0 and result.precise_mean == 1.0
    gt = np.stack([s["meta"]["keypoints_image"][:, :2].numpy() for s in samples])
    sizes = np.array([s["meta"]["size"][0].item() for s in samples])
    # codec resolution: the target peak is the rounded heatmap pixel (<= half a heatmap pixel
    # per axis), and a centred Gaussian decodes without a quarter shift
    tol = 0.5 * STRIDE * sizes[:, None] / INPUT + 1e-6
    err = np.abs(result.preds - gt).max(-1)
    assert result.preds.shape == (7, K, 2)
    assert np.all(err[vis] <= np.broadcast_to(tol, err.shape)[vis])
    assert np.allclose(result.scores[vis], 1.0)
    assert result.loss is None and result.overlays == []


def _grid_samples(shifts: np.ndarray, visible: np.ndarray, columns: np.ndarray):
    """Samples whose keypoints lie exactly on heatmap pixel centres (crop x = 2 j + 0.5) in a
    64-px crop (1 crop px = 1 image px) and a table of heatmaps shifted by ``shifts`` (N, K, 2)
    heatmap pixels."""
    samples, table = [], []
    center = (100.5, 80.5)  # crop offset 31.5 - centre: integer, so image px = crop px + 69/49
    offset = np.array([31.5 - center[0], 31.5 - center[1]])
    for i in range(len(shifts)):
        j = columns[i]  # (K, 2) heatmap pixels
        crop_xy = STRIDE * j + 0.5 * (STRIDE - 1)
        kp_image = np.concatenate([crop_xy - offset, visible[i][:, None]], axis=1)
        samples.append(_sample(i, kp_image, center, float(INPUT)))
        shifted = torch.from_numpy(crop_xy + STRIDE * shifts[i]).float()
        table.append(CODEC.encode(shifted, torch.from_numpy(visible[i]).float())[0])
    return samples, torch.stack(table)


@pytest.mark.parametrize("flip_index", [None, FLIP_INDEX])
def test_evaluate_shifted_model_known_numbers(flip_index):
    # (sample, keypoint) shifts in heatmap pixels; legacy hit < 1.6 heatmap px (0.05 x 32),
    # precise hit < 3.2 image px (0.05 x 64) = 1.6 heatmap px: (1,0) and (1,1) hit, (2,0) misses.
    shifts = np.zeros((3, K, 2))
    shifts[1, 0] = (2, 0)  # keypoint 0: hit, miss | hit
    shifts[0, 1], shifts[1, 1], shifts[2, 1] = (1, 1), (1, 0), (0, 2)  # hit, hit | miss
    shifts[1, 2] = (0, 0)
    shifts[2, 2] = (-2, 0)  # keypoint 2: (column 0: legacy skips), hit | miss
    visible = np.ones((3, K))
    visible[:2, 3] = 0  # keypoint 3: only in the second batch
    visible[:, 4] = 0  # keypoint 4: never
    columns = np.random.default_rng(3).integers(4, 26, size=(3, K, 2)).astype(np.float64)
    columns[0, 2, 0] = 0  # heatmap column 0
    samples, table = _grid_samples(shifts, visible, columns)
    calls = []

    def loss_fn(stacks, heatmaps, weights):
        calls.append((len(stacks), stacks[-1].shape, heatmaps, weights))
        return torch.tensor(float(len(stacks) * heatmaps.shape[0]))

    batches = _batches(samples, [2, 1])
    result = _evaluate_on_cpu(
        LookupModel(table),
        batches,
        flip_index=flip_index,
        loss_fn=loss_fn,
        max_images_for_overlay=2,
    )
    # legacy = mean over the two batches of per-batch fractions:
    # keypoint 0: (1/2 + 1/1) / 2; keypoint 1: (2/2 + 0/1) / 2; keypoint 2: batch 1 is sample 1
    # only (sample 0 sits in heatmap column 0, skipped by the "> 1" test) -> (1/1 + 0/1) / 2;
    # keypoint 3: batch 2 only -> 1; keypoint 4: never valid. Precise pools over samples.
    legacy = [0.75, 0.5, 0.5, 1.0, math.nan]
    assert np.allclose(result.legacy, legacy, equal_nan=True)
    assert np.allclose(result.precise, [2 / 3, 2 / 3, 2 / 3, 1.0, math.nan], equal_nan=True)
    assert result.precise_counts.tolist() == [3, 3, 3, 1, 0]
    gt = np.stack([s["meta"]["keypoints_image"][:, :2].numpy() for s in samples])
    # 1 heatmap px = 2 crop px = 2 image px; no quarter shift on a centred Gaussian
    shown = visible > 0
    assert np.allclose(result.preds[shown], (gt + STRIDE * shifts)[shown], atol=1e-9)
    # loss: (2 stacks x batch 2) x 2 + (2 x 1) x 1, per sample
    assert result.loss == pytest.approx((4 * 2 + 2 * 1) / 3)
    assert [c[0] for c in calls] == [2, 2] and calls[0][1] == (2, K, HEATMAP, HEATMAP)
    enc = CODEC.encode(batches[0]["keypoints"][..., :2], batches[0]["keypoints"][..., 2])
    assert torch.equal(calls[0][2], enc[0])
    assert torch.equal(calls[0][3], torch.from_numpy(visible[:2]).float())
    assert len(result.overlays) == 2
    crop, pred, truth = result.overlays[1]
    assert crop.shape == (INPUT, INPUT, 3) and crop.dtype == np.uint8 and crop[0, 0, 0] == 2
    assert pred.shape == (K, 3) and np.array_equal(truth, samples[1]["keypoints"].numpy())


def test_evaluate_rejects_bad_batches():
    samples = _random_samples(2, seed=1)
    bad = _batches(samples, [2])
    del bad[0]["meta"]["matrix"]
    model = ConstantModel(torch.zeros(1, K, HEATMAP, HEATMAP))
    with pytest.raises(ValueError, match="matrix"):
        _evaluate_on_cpu(model, bad)
    with pytest.raises(ValueError, match="no batches"):
        _evaluate_on_cpu(model, [])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_on_cuda_matches_cpu_without_per_batch_host_syncs():
    samples = _random_samples(12, seed=4)
    table = _perfect_table(samples)
    cpu = _evaluate_on_cpu(
        LookupModel(table),
        _batches(samples, [3] * 4),
        flip_index=FLIP_INDEX,
        permutation=list(range(K)),
    )
    mean = torch.zeros(1, 3, 1, 1, device="cuda")

    def normalizer(images):  # on-device constants: no host transfer per batch
        return images.float() / 255.0 - mean

    model = LookupModel(table).cuda()

    def run(sizes):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = evaluate(
                    model,
                    _batches(samples, sizes),
                    codec=CODEC,
                    normalizer=normalizer,
                    device="cuda",
                    flip_index=FLIP_INDEX,
                    permutation=list(range(K)),
                    amp=True,
                    progress=False,
                )
            finally:
                torch.cuda.set_sync_debug_mode(0)
        return result, sum("synchroniz" in str(w.message) for w in caught)

    one, syncs_one = run([12])
    four, syncs_four = run([3] * 4)
    assert syncs_four == syncs_one  # host syncs happen only once per pass, not per batch
    assert np.allclose(four.preds, cpu.preds, atol=1e-4)
    assert np.allclose(four.legacy, cpu.legacy, equal_nan=True)
    assert np.allclose(four.precise, cpu.precise, equal_nan=True)
    assert np.allclose(one.precise, cpu.precise, equal_nan=True)

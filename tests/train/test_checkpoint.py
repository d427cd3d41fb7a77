"""Checkpoints: reference-format compatibility, round trips, RNG restore, atomic writes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import animalpose.datasets.fileio as files
from animalpose.datasets.fileio import DataError
from animalpose.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    build_checkpoint,
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    model_state_from_checkpoint,
    non_finite_weights,
    restore_rng_state,
    restore_training_state,
    save_checkpoint,
    unwrap_model,
)
from animalpose.train.models.hourglass import HourglassNet

#: A 1-stack model keeps the (pure-Python) weights-only unpickler quick.
TINY = dict(num_stacks=1, num_blocks=1, num_keypoints=3, channels=16)


def _tiny_training_objects(seed: int = 0):
    torch.manual_seed(seed)
    model = HourglassNet(**TINY)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[60, 90], gamma=0.1)
    scaler = torch.amp.GradScaler("cpu")
    return model, optimizer, scheduler, scaler


@pytest.fixture(scope="module")
def base_state():
    """One small checkpoint state, shared by the file-handling tests."""
    model, optimizer, scheduler, scaler = _tiny_training_objects()
    return build_checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=1,
        best_acc=0.25,
        keypoint_spec="animal18",
        config={"train": {"lr": 2.5e-4, "schedule": [60, 90]}, "data": {"animal": "horse"}},
        scheduler=scheduler,
        scaler=scaler,
    )


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# -- our own round trip ------------------------------------------------------------------------
def test_round_trip_of_our_checkpoint(tmp_path):
    model, optimizer, scheduler, scaler = _tiny_training_objects(seed=1)
    state = build_checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=3,
        best_acc=torch.tensor(0.75),
        keypoint_spec="animal18",
        config={"model": {"arch": "hg", "stacks": 1}},
        scheduler=scheduler,
        scaler=scaler,
    )
    path = save_checkpoint(state, tmp_path, is_best=False)
    assert path == tmp_path / CHECKPOINT_NAME
    # A reference tool's plain torch.load(weights_only=True) reads it too.
    raw = torch.load(path, weights_only=True)
    assert {"epoch", "arch", "state_dict", "best_acc", "optimizer"} <= set(raw)
    assert raw["epoch"] == 3 and raw["arch"] == "hg" and raw["keypoint_spec"] == "animal18"
    assert raw["best_acc"].dim() == 0 and raw["best_acc"].item() == pytest.approx(0.75)
    assert raw["config"] == {"model": {"arch": "hg", "stacks": 1}}
    assert all(k.startswith("module.") for k in raw["state_dict"])

    ckpt = load_checkpoint(path)
    fresh, fresh_optimizer, fresh_scheduler, fresh_scaler = _tiny_training_objects(seed=2)
    fresh_optimizer.state.clear()
    resume = restore_training_state(
        ckpt,
        model=fresh,
        optimizer=fresh_optimizer,
        scheduler=fresh_scheduler,
        scaler=fresh_scaler,
        restore_rng=False,
    )
    assert resume.start_epoch == 3 and resume.best_acc == pytest.approx(0.75)
    for (name, a), b in zip(fresh.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_scaler.state_dict() == scaler.state_dict()
    first = next(iter(model.parameters()))
    assert torch.equal(
        fresh_optimizer.state[next(iter(fresh.parameters()))]["square_avg"],
        optimizer.state[first]["square_avg"],
    )


def _draws():
    return (
        torch.rand(4),
        np.random.rand(3),
        np.random.randn(),  # consumes NumPy's cached Gaussian when there is one
        random.random(),
        random.gauss(0.0, 1.0),  # consumes Python's cached gauss_next
    )


def _assert_same_draws(a, b):
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2:] == b[2:]


def test_rng_restore_through_a_saved_checkpoint(tmp_path, base_state):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.randn()  # leave a cached Gaussian in both legacy generators
    random.gauss(0.0, 1.0)
    rng = capture_rng_state()
    after_capture = _draws()
    save_checkpoint({**base_state, "rng": rng}, tmp_path, is_best=False)
    _draws()  # move every generator on
    restore_rng_state(load_checkpoint(tmp_path / CHECKPOINT_NAME)["rng"])
    _assert_same_draws(_draws(), after_capture)


def test_rng_restore_in_memory_and_malformed_state():
    rng = capture_rng_state()
    first = _draws()
    restore_rng_state(rng)
    _assert_same_draws(_draws(), first)
    with pytest.raises(ValueError, match="malformed RNG state"):
        restore_rng_state({"numpy": {"keys": torch.zeros(3)}})


# -- files -------------------------------------------------------------------------------------
def test_model_best_copy_and_snapshot_names(tmp_path, base_state):
    for epoch in range(1, 6):
        save_checkpoint({**base_state, "epoch": epoch}, tmp_path, is_best=epoch == 2, snapshot=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [CHECKPOINT_NAME, BEST_NAME, "checkpoint_2.pth.tar", "checkpoint_4.pth.tar"]
    )
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 5
    assert load_checkpoint(tmp_path / BEST_NAME)["epoch"] == 2
    assert load_checkpoint(tmp_path / "checkpoint_4.pth.tar")["epoch"] == 4
    assert (tmp_path / "checkpoint_2.pth.tar").read_bytes() == (tmp_path / BEST_NAME).read_bytes()


def test_no_snapshots_by_default(tmp_path, base_state):
    save_checkpoint({**base_state, "epoch": 4}, tmp_path, is_best=False, filename="last.pth.tar")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth.tar"]


def test_unloadable_state_is_refused_and_previous_file_kept(tmp_path, base_state):
    save_checkpoint(base_state, tmp_path, is_best=True)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    bad = {**base_state, "epoch": 2, "config": {"root": Path("/data")}}
    with pytest.raises(ValueError, match="weights_only"):
        save_checkpoint(bad, tmp_path, is_best=True)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert (tmp_path / BEST_NAME).read_bytes() == before
    assert _temp_files(tmp_path) == []


def test_failing_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch, base_state):
    save_checkpoint(base_state, tmp_path, is_best=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({**base_state, "epoch": 2}, tmp_path, is_best=False)
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1
    assert _temp_files(tmp_path) == []


def test_save_refuses_states_reference_tools_could_not_use(tmp_path, base_state):
    state = base_state
    with pytest.raises(ValueError, match="module."):
        save_checkpoint(
            {**state, "state_dict": model_state_from_checkpoint(state)}, tmp_path, is_best=False
        )
    with pytest.raises(ValueError, match="best_acc"):
        save_checkpoint(
            {k: v for k, v in state.items() if k != "best_acc"}, tmp_path, is_best=False
        )
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pth.tar"
    with pytest.raises(DataError, match="nope.pth.tar.*not found"):
        load_checkpoint(missing)
    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(DataError, match="corrupt.pth.tar.*cannot read"):
        load_checkpoint(corrupt)
    listing = tmp_path / "list.pth.tar"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(DataError, match="list.pth.tar.*not a dict"):
        load_checkpoint(listing)
    other = tmp_path / "other.pth.tar"
    torch.save({"epoch": 1, "note": "no weights"}, other)
    with pytest.raises(DataError, match="other.pth.tar.*not a checkpoint"):
        load_checkpoint(other)
    unsafe = tmp_path / "unsafe.pth.tar"
    torch.save({"state_dict": {}, "root": Path("/x")}, unsafe)
    with pytest.raises(DataError, match="unsafe.pth.tar"):
        load_checkpoint(unsafe)


def test_bare_state_dict_file_loads(tmp_path):
    model = HourglassNet(**TINY)
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)
    fresh = HourglassNet(**TINY)
    load_model_weights(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters()))


def test_model_state_strips_wrapper_prefixes():
    weight = torch.ones(2)
    for key in (
        "conv.weight",
        "module.conv.weight",
        "_orig_mod.conv.weight",
        "module._orig_mod.conv.weight",
    ):
        assert list(model_state_from_checkpoint({"state_dict": {key: weight}})) == ["conv.weight"]
    assert list(model_state_from_checkpoint({"module.a": weight})) == ["a"]
    with pytest.raises(DataError, match="not a checkpoint"):
        model_state_from_checkpoint({"epoch": 3})


def test_load_into_wrapped_model():
    model = HourglassNet(**TINY)
    wrapped = nn.DataParallel(HourglassNet(**TINY))
    load_model_weights(wrapped, {"state_dict": model.state_dict()})
    assert unwrap_model(wrapped) is wrapped.module
    assert all(torch.equal(a, b) for a, b in zip(wrapped.parameters(), model.parameters()))


def test_incompatible_weights_list_keys_and_file(tmp_path, base_state):
    path = tmp_path / "one_stack.pth.tar"
    save_checkpoint(base_state, tmp_path, is_best=False, filename=path.name)
    two_stacks = HourglassNet(**{**TINY, "num_stacks": 2})
    with pytest.raises(DataError, match=r"one_stack.pth.tar.*missing keys \(\d+\): hg\.1\."):
        load_model_weights(two_stacks, path)
    result = load_model_weights(two_stacks, path, strict=False)
    assert result.missing_keys and all(
        k.startswith(("hg.1.", "res.1.", "fc.1.", "score.1.", "fc_.0.", "score_.0."))
        for k in result.missing_keys
    )
    extra = {**base_state["state_dict"], "module.extra.weight": torch.zeros(1)}
    extra_path = tmp_path / "extra.pth.tar"
    torch.save({**base_state, "state_dict": extra}, extra_path)
    one_stack = HourglassNet(**{**TINY, "num_stacks": 1})
    with pytest.raises(DataError, match=r"extra.pth.tar.*unexpected keys \(1\): extra\.weight"):
        load_model_weights(one_stack, extra_path)
    other_k = HourglassNet(**{**TINY, "num_stacks": 1, "num_keypoints": 5})
    with pytest.raises(DataError, match=r"one_stack.pth.tar.*shape mismatches.*score\.0\.weight"):
        load_model_weights(other_k, path, strict=False)


# -- resuming: clear errors that name the file (issue 10) ----------------------------------------
def test_errors_about_a_loaded_checkpoint_name_its_file(tmp_path, base_state):
    """``load_checkpoint`` returns a dict that remembers its file: errors raised later, about
    its content, name it (they said ``<in-memory checkpoint>``)."""
    path = tmp_path / "one_stack.pth.tar"
    save_checkpoint(base_state, tmp_path, is_best=False, filename=path.name)
    ckpt = load_checkpoint(path)
    assert ckpt.source == str(path)
    two_stacks = HourglassNet(**{**TINY, "num_stacks": 2})
    for load in (
        lambda: load_model_weights(two_stacks, ckpt),
        lambda: restore_training_state(ckpt, model=two_stacks),
    ):
        with pytest.raises(DataError, match=r"one_stack.pth.tar: weights do not fit"):
            load()
    ckpt["state_dict"] = [1, 2]
    with pytest.raises(DataError, match=r"one_stack.pth.tar: checkpoint 'state_dict' is a list"):
        restore_training_state(ckpt, model=HourglassNet(**TINY))


def _adam_checkpoint(path: Path) -> nn.Module:
    torch.manual_seed(0)
    model = HourglassNet(**TINY)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    adam.step()
    torch.save(
        build_checkpoint(
            model=model, optimizer=adam, epoch=1, best_acc=0.0, keypoint_spec="animal18"
        ),
        path,
    )
    return model


def test_resume_refuses_another_solvers_optimizer_state(tmp_path, base_state):
    """Adam's state loaded into RMSprop failed only at the first step (KeyError 'square_avg')."""
    path = tmp_path / "adam.pth.tar"
    model = _adam_checkpoint(path)
    rms = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    with pytest.raises(DataError, match=r"adam.pth.tar: its optimizer state is not RMSprop's "):
        restore_training_state(load_checkpoint(path), model=model, optimizer=rms)
    save_checkpoint(base_state, tmp_path, is_best=False, filename="rms.pth.tar")
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(DataError, match=r"rms.pth.tar: .*not Adam's \(it has alpha, centered"):
        restore_training_state(
            load_checkpoint(tmp_path / "rms.pth.tar"), model=model, optimizer=adam
        )
    fewer = torch.optim.RMSprop(list(model.parameters())[:3], lr=1e-3)
    with pytest.raises(DataError, match=r"rms.pth.tar: its optimizer state does not fit"):
        restore_training_state(
            load_checkpoint(tmp_path / "rms.pth.tar"), model=model, optimizer=fewer
        )


def test_resume_refuses_non_finite_weights_naming_them(tmp_path, base_state):
    weights = dict(base_state["state_dict"])
    weights["module.conv1.weight"] = torch.full_like(weights["module.conv1.weight"], float("inf"))
    weights["module.bn1.running_var"] = torch.full_like(weights["module.bn1.running_var"], np.nan)
    assert non_finite_weights(weights) == ["module.conv1.weight", "module.bn1.running_var"]
    path = tmp_path / "diverged.pth.tar"
    torch.save({**base_state, "state_dict": weights}, path)
    with pytest.raises(DataError, match=r"diverged.pth.tar: the weights hold NaN or inf \(conv1"):
        restore_training_state(load_checkpoint(path), model=HourglassNet(**TINY))


def test_the_main_file_is_committed_before_its_copies(tmp_path, base_state, monkeypatch):
    """``model_best`` and snapshots are copies written after the main file (the commit point);
    a run stopped in between finds the main file complete (run_folder repairs the copies)."""
    written = []
    real = files.atomic_write

    def record(path, mode="wb"):
        written.append(Path(path).name)
        return real(path, mode)

    monkeypatch.setattr("animalpose.train.checkpoint.atomic_write", record)
    save_checkpoint({**base_state, "epoch": 2}, tmp_path, is_best=True, snapshot=2)
    assert written == [CHECKPOINT_NAME, "checkpoint_2.pth.tar", BEST_NAME]
    assert (tmp_path / BEST_NAME).read_bytes() == (tmp_path / CHECKPOINT_NAME).read_bytes()

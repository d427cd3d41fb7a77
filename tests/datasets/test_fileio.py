import os
import stat

import pytest

from animalpose.datasets.fileio import atomic_write


def test_atomic_write_replaces_whole_and_keeps_open_mode(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_crash_point_kills_like_sigkill_at_the_chosen_occurrence(tmp_path):
    import signal
    import subprocess
    import sys

    from animalpose.datasets.fileio import CRASH_ENV

    code = (
        "from animalpose.datasets.fileio import atomic_write, crash_point\n"
        "import sys\n"
        "for i in range(3):\n"
        "    crash_point('step'); print(i, flush=True)\n"
        f"with atomic_write({str(tmp_path / 'out.txt')!r}, 'w') as f: f.write('new')\n"
    )
    env = {**__import__("os").environ}
    for target, printed in (("step@2", "0\n"), ("step", ""), ("other", "0\n1\n2\n")):
        env[CRASH_ENV] = target
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout == printed
        assert out.returncode == (0 if target == "other" else -signal.SIGKILL)
    (tmp_path / "out.txt").write_text("old")
    env[CRASH_ENV] = "write:out.txt"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL
    # Killed after the data hit the disk but before the rename: the old file stands, a
    # temporary one is left behind, and remove_temp_files cleans it up.
    assert (tmp_path / "out.txt").read_text() == "old"
    from animalpose.datasets.fileio import remove_temp_files

    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.txt")
    assert len(left) == 1 and left[0].startswith(".out.txt.") and left[0].endswith(".tmp")
    assert [p.name for p in remove_temp_files(tmp_path / "out.txt")] == left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]

"""The installed distribution exposes one ``animalpose`` namespace and nothing top-level else."""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("datasets", "evaluation", "train", "adapt")


def _run_outside(code: str, cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"},
    )
    return out.stdout


def test_namespace_imports_from_outside_the_repo(tmp_path):
    code = (
        "import importlib, json\n"
        f"names = {[f'animalpose.{n}' for n in SUBPACKAGES]!r}\n"
        "mods = [importlib.import_module(n) for n in names]\n"
        "print(json.dumps([m.__file__ for m in mods]))\n"
    )
    files = json.loads(_run_outside(code, tmp_path))
    for name, file in zip(SUBPACKAGES, files):
        assert Path(file).resolve() == REPO / name / "__init__.py"


def test_no_top_level_datasets_or_train_module(tmp_path):
    top = importlib.metadata.distribution("animalpose").read_text("top_level.txt").split()
    assert top == ["animalpose"]
    code = (
        "import importlib.util, json\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None and "
        "str(importlib.util.find_spec(n).origin) for n in "
        f"{list(SUBPACKAGES)!r}}}))\n"
    )
    found = json.loads(_run_outside(code, tmp_path))
    for name, origin in found.items():
        # Another distribution (e.g. Hugging Face datasets) may own the name; ours must not.
        assert not origin or str(REPO) not in origin, f"top-level {name!r} resolves into the repo"


def test_scripts_run_from_any_directory(tmp_path):
    for script in ("train/train.py", "evaluation/test.py"):
        out = subprocess.run(
            [sys.executable, str(REPO / script), "--help"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert "--dataset" in out.stdout and "--resume" in out.stdout

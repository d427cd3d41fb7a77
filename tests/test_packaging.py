"""The installed distribution exposes one ``animalpose`` namespace and nothing top-level else;
a wheel built from the working tree ships every module and data file and imports in a fresh venv."""

import importlib.metadata
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("datasets", "evaluation", "train", "adapt")
#: The packaged vertex tables (``package_data`` in setup.py); at least one must ship.
VERTEX_TABLE_GLOB = "*/vertex_tables/*.json"


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


def _run(cmd: list[str], **kwargs) -> str:
    """Run ``cmd``; on failure, fail the test with its output (CalledProcessError hides it)."""
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _source_files() -> list[str]:
    """Tracked and new (not ignored) files of the working tree that exist now, repo-relative."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"needs a git checkout to list the source files ({err})")
    return sorted({f for f in out.splitlines() if (REPO / f).is_file()})


def _in_package(rel: str) -> bool:
    """A file of the installed folders (``datasets/...``, ``train/...``, ...)."""
    return "/" in rel and rel.split("/", 1)[0] in SUBPACKAGES


def _build_wheel(tmp_path: Path, files: list[str]) -> Path:
    """Build a wheel offline from a copy of the top-level files and the package folders; the
    repo stays untouched (setuptools writes build/ and *.egg-info into the tree it builds)."""
    src = tmp_path / "src"
    for rel in files:
        if "/" not in rel or _in_package(rel):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path / "wheels"
    pip_wheel = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out)]
    _run([sys.executable, "-m", "pip", *pip_wheel, str(src)])
    (wheel,) = out.glob("animalpose-*.whl")
    return wheel


def _fresh_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv without pip whose dependencies come from this venv's site-packages: a .pth line
    adds that folder to sys.path but runs none of its .pth files, so the editable install's
    finder stays out and ``animalpose`` can only come from the wheel."""
    env = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)])
    python = env / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib]).strip())
    (site / "_animalpose_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


#: Imports every module of the installed namespace, found by walking it (not from a list).
IMPORT_ALL = """
import importlib, json, pkgutil
import animalpose
names = sorted(m.name for m in pkgutil.walk_packages(animalpose.__path__, "animalpose."))
errors, files = {}, {}
for name in names:
    try:
        files[name] = importlib.import_module(name).__file__
    except Exception as err:
        errors[name] = f"{type(err).__name__}: {err}"
print(json.dumps({"errors": errors, "files": files}))
"""


def test_wheel_ships_every_module_and_imports_in_a_fresh_venv(tmp_path):
    pytest.importorskip("setuptools", reason="building without isolation needs setuptools")
    files = _source_files()
    package_files = [f for f in files if _in_package(f)]
    tables = [f for f in package_files if Path(f).match(VERTEX_TABLE_GLOB)]
    assert tables, f"no {VERTEX_TABLE_GLOB} files under {SUBPACKAGES}"
    wheel = _build_wheel(tmp_path, files)

    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in package_files if f"animalpose/{f}" not in shipped]
    assert not missing, f"files of the package folders missing from {wheel.name}: {missing}"

    python, site = _fresh_venv(tmp_path)
    pip_install = ["install", "--no-deps", "--no-index", "-q", str(wheel)]
    _run([sys.executable, "-m", "pip", "--python", str(python), *pip_install])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", "HOME": str(elsewhere)}
    out = _run([str(python), "-c", IMPORT_ALL], cwd=elsewhere, env=env)
    result = json.loads(out.strip().splitlines()[-1])
    assert not result["errors"], result["errors"]

    expected = {
        "animalpose." + f.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for f in package_files
        if f.endswith(".py")
    }
    assert set(result["files"]) == expected
    for name, file in result["files"].items():
        assert Path(file).resolve().is_relative_to(site.resolve()), f"{name} imported from {file}"
    for table in tables:
        assert (site / "animalpose" / table).is_file(), f"{table} not installed"

"""The folder tree is the architecture: imports go one way, without cycles, and no module
shadows a standard-library or dependency module (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The card's folders in import order: a module may import from its own folder and those before.
FOLDERS = ("datasets", "evaluation", "train", "adapt")
#: Dependencies whose names a module of ours must not take (style.md, "Layout and imports").
DEPENDENCIES = {"torch", "torchvision", "numpy", "cv2", "scipy", "imgaug", "yaml", "h5py", "tqdm"}
#: The scripts sit on top of everything (they only call a ``main()``), and their names are the
#: reference's (``evaluation/test.py``), so they are exempt from both rules.
SCRIPTS = {
    "datasets/generate.py",
    "datasets/crop_real.py",
    "datasets/make_fixture.py",
    "evaluation/test.py",
    "train/train.py",
    "train/train_multitask.py",
    "adapt/ccssl.py",
    "adapt/wscda.py",
    "adapt/uda_animal.py",
}
#: ``datasets/codecs/`` keeps the field's name (mmpose's ``codecs``): the standard library's
#: ``codecs`` is imported while the interpreter starts, before a script's folder joins sys.path,
#: so ``python datasets/generate.py`` cannot shadow it (checked below).
ALLOWED_NAMES = {"codecs"}


def _modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the four folders."""
    out = {}
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(("animalpose", *parts))] = path
    return out


MODULES = _modules()
LIBRARY = {m: p for m, p in MODULES.items() if str(p.relative_to(REPO)) not in SCRIPTS}


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The ``animalpose.*`` modules that ``path`` imports (a ``from pkg import name`` counts as
    ``pkg.name`` where that is a module, else as ``pkg``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return {name for name in found if name.startswith("animalpose.")}


def _folder(module: str) -> str:
    return module.split(".")[1]


def test_the_four_folders_hold_modules():
    assert {_folder(m) for m in MODULES} == set(FOLDERS)
    assert len(MODULES) > 40


def test_scripts_exist():
    assert all((REPO / script).is_file() for script in SCRIPTS)


@pytest.mark.parametrize("module", sorted(LIBRARY))
def test_imports_go_one_way(module):
    rank = FOLDERS.index(_folder(module))
    for target in _imports(LIBRARY[module], top_level_only=False):
        assert target in MODULES, f"{module} imports {target}, which does not exist"
        assert FOLDERS.index(_folder(target)) <= rank, (
            f"{module} imports {target}: the import direction is {' <- '.join(FOLDERS)}"
        )


def test_no_import_cycles():
    graph = {m: _imports(p, top_level_only=True) & set(MODULES) for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph[module]):
            # Importing a package runs its __init__, not its submodules: only real edges count.
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_module_shadows_a_stdlib_or_dependency_module():
    taken = (set(sys.stdlib_module_names) | DEPENDENCIES) - ALLOWED_NAMES
    clashes = [str(p.relative_to(REPO)) for m, p in LIBRARY.items() if m.split(".")[-1] in taken]
    assert clashes == []


def test_allowed_stdlib_names_are_loaded_before_a_script_runs(tmp_path):
    # A script's folder joins sys.path after start-up; a module loaded by then cannot be shadowed.
    script = tmp_path / "probe.py"
    script.write_text("import sys; print(sorted(set(sys.argv[1:]) - set(sys.modules)))")
    out = subprocess.run(
        [sys.executable, "-I", str(script), *ALLOWED_NAMES],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_no_sys_path_edits():
    sources = [*MODULES.values(), *REPO.glob("benchmarks/*.py"), *REPO.glob("tests/**/*.py")]
    offenders = []
    for path in sources:
        if path == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []

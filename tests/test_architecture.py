"""The package's layers, read from its import graph (with ``ast``, imports inside functions too).

Layers, lowest first; a module may import its own layer and those below it:

0. ``neuroseg.paths``, ``io``, ``plots``, ``pipeline``, ``checks``, ``machine`` (serve every layer)
1. ``neuroseg.data``
2. ``neuroseg.nets``
3. ``neuroseg.measure``
4. ``neuroseg.linking``
5. ``neuroseg.segment``
6. ``neuroseg.experiments`` (one module per notebook; they never import each other, except
   the shared constants of ``experiments.papers``)
7. ``neuroseg.report``
8. ``neuroseg.cli`` (the ``neuroseg`` command)

Further rules: no import circle; no module imports another module's private name (``_x``),
neither ``from m import _x`` nor ``m._x``. The checker is tested on a small fake package with
one violation of each kind, so that a checker that sees nothing fails too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neuroseg"

LAYERS = {
    "paths": 0, "io": 0, "plots": 0, "pipeline": 0, "checks": 0, "machine": 0,
    "data": 1, "nets": 2, "measure": 3, "linking": 4, "segment": 5,
    "experiments": 6, "report": 7, "cli": 8, "__main__": 8,
}
SHARED_EXPERIMENT_MODULES = {"papers"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    names: tuple[str, ...]
    line: int


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, level: int, source: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_edges(package: Path) -> list[Edge]:
    """Every import of a module of the package by another, wherever it is written."""
    files = module_files(package)
    root = package.name
    edges = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == root:
                        edges.append(Edge(name, a.name, (), node.lineno))
                        if a.asname:
                            aliases[a.asname] = a.name
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(node.module or "", node.level, name, path.name == "__init__.py")
                if target.split(".")[0] != root:
                    continue
                plain = []
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in files:  # `from pkg import module`
                        edges.append(Edge(name, sub, (), node.lineno))
                        aliases[a.asname or a.name] = sub
                    else:
                        plain.append(a.name)
                if plain:
                    edges.append(Edge(name, target, tuple(plain), node.lineno))
        for node in ast.walk(tree):  # module._private
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")):
                edges.append(Edge(name, aliases[node.value.id], (node.attr,), node.lineno))
    return edges


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def violations(package: Path) -> list[str]:
    """Every broken rule, as a sentence naming the file and line."""
    files = module_files(package)
    edges = import_edges(package)
    out = []
    graph: dict[str, set[str]] = {m: set() for m in files}
    for e in edges:
        where = f"{e.source} (line {e.line})"
        if e.target not in files:
            out.append(f"{where} imports {e.target}, which does not exist")
            continue
        if e.target != e.source:
            graph[e.source].add(e.target)
        private = [n for n in e.names if n.startswith("_") and not n.startswith("__")]
        if private and e.target != e.source:
            out.append(f"{where} uses private name(s) {private} of {e.target}")
        src, dst = _layer(e.source), _layer(e.target)
        if src is not None and dst is not None and dst > src:
            out.append(f"{where} imports {e.target} from a higher layer")
        s, t = e.source.split("."), e.target.split(".")
        if (len(s) > 2 and len(t) > 2 and s[1] == t[1] == "experiments" and s[2] != t[2]
                and t[2] not in SHARED_EXPERIMENT_MODULES):
            out.append(f"{where}: experiment {s[2]} imports experiment {t[2]}")
    out += [f"import circle: {' -> '.join(c)}" for c in _cycles(graph)]
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp) + [sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# --------------------------------------------------------------------------------------------
# the checker on a fake package with known violations
# --------------------------------------------------------------------------------------------


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "neuroseg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_checker_passes_a_clean_package(tmp_path):
    root = _fake_package(tmp_path, {
        "data/readers.py": "from neuroseg import paths\n",
        "paths.py": "X = 1\n",
        "nets/unet.py": "from neuroseg.data.readers import read\n",
        "experiments/alpha.py": "from neuroseg.experiments import papers\nfrom ..nets import unet\n",
        "experiments/papers.py": "TARGET = 1\n",
    })
    (root / "data" / "readers.py").write_text("from neuroseg import paths\n\ndef read():\n    pass\n")
    assert violations(root) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"data/a.py": "def f():\n    from neuroseg.nets import b\n", "nets/b.py": ""},
         "from a higher layer"),
        ({"experiments/one.py": "from neuroseg.experiments.two import run\n",
          "experiments/two.py": "def run():\n    pass\n"},
         "experiment one imports experiment two"),
        ({"measure/a.py": "from neuroseg.measure.b import _check\n",
          "measure/b.py": "def _check():\n    pass\n"},
         "private name(s) ['_check']"),
        ({"measure/a.py": "from neuroseg.measure import b\nb._check()\n",
          "measure/b.py": "def _check():\n    pass\n"},
         "private name(s) ['_check']"),
        ({"linking/a.py": "def f():\n    from . import b\n",
          "linking/b.py": "from neuroseg.linking import a\n"},
         "import circle: neuroseg.linking.a -> neuroseg.linking.b -> neuroseg.linking.a"),
    ],
    ids=["upward", "experiment-to-experiment", "private-from", "private-attribute", "circle"],
)
def test_checker_finds_each_kind_of_violation(tmp_path, files, expected):
    found = violations(_fake_package(tmp_path, files))
    assert any(expected in v for v in found), found


# --------------------------------------------------------------------------------------------
# the package itself
# --------------------------------------------------------------------------------------------


def test_package_keeps_its_layers():
    found = violations(PACKAGE)
    assert found == [], "\n".join(found)


def test_every_module_belongs_to_a_layer():
    loose = [m for m in module_files(PACKAGE) if m != "neuroseg" and _layer(m) is None]
    assert loose == []


def test_one_experiment_module_per_notebook():
    notebooks = {p.stem.split("_", 1)[1] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    modules = {p.stem for p in (PACKAGE / "experiments").glob("*.py")} - {"__init__"}
    # 90_figures draws from every step's saved results: its code is neuroseg.report
    assert modules - SHARED_EXPERIMENT_MODULES == notebooks - {"figures"}


def test_papers_module_is_constants_without_torch():
    tree = ast.parse((PACKAGE / "experiments" / "papers.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__"}


def test_import_neuroseg_and_paths_are_light():
    code = (
        "import sys, json\n"
        "import neuroseg, neuroseg.paths, neuroseg.pipeline\n"
        "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert json.loads(out.stdout) == []


def test_top_level_calls_load_lazily():
    import neuroseg

    assert callable(neuroseg.segment_volume_3d)
    assert set(neuroseg.__all__) <= set(dir(neuroseg))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        neuroseg.nothing  # noqa: B018


def test_no_module_is_too_long():
    """About 600 lines a module; 800 at most."""
    long = {m: n for m, p in module_files(PACKAGE).items()
            if (n := len(p.read_text().splitlines())) > 800}
    assert long == {}

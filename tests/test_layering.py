"""wespk's layers: no module imports one from a higher layer, and the parts import each other
without cycles.

The layer table below is the one place that says which part of the package sits where;
docs/architecture.md describes it. Every import is counted, including imports inside
functions (a lazy import is still a dependency).
"""

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "wespk"

#: Bottom to top. A part may import parts of its own layer or of a lower one.
LAYERS: List[Tuple[str, ...]] = [
    ("io", "utils"),
    ("features", "augment", "models", "losses", "frontends"),
    ("data",),
    ("train", "inference", "export", "scoring", "enhance", "diarization", "pretrained"),
    ("bin", "cli", "api"),
]
#: ``wespk/__init__.py`` re-exports the API, so it sits on top with it.
PACKAGE_INIT_LAYER = len(LAYERS) - 1

LAYER_OF: Dict[str, int] = {part: index for index, parts in enumerate(LAYERS) for part in parts}


def part_of(path: Path) -> str:
    """The part a module file belongs to: ``wespk/<part>/...`` or ``wespk/<part>.py``."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> Set[Tuple[str, int]]:
    """``(part, line)`` of every ``wespk.<part>`` a module imports (absolute or relative)."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module_parts[:-1]
                base = list(package[:len(package) - node.level + 1])
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
            if names and names[0] == "wespk":
                names = [f"wespk.{alias.name}" for alias in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "wespk" and len(pieces) > 1:
                found.add((pieces[1], node.lineno))
    return found


def module_files() -> List[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_layer():
    parts = {part_of(path) for path in module_files() if path != PACKAGE / "__init__.py"}
    unplaced = sorted(parts - set(LAYER_OF))
    assert not unplaced, f"parts of wespk missing from LAYERS in {__file__}: {unplaced}"


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in module_files():
        part = part_of(path)
        layer = PACKAGE_INIT_LAYER if path == PACKAGE / "__init__.py" else LAYER_OF.get(part)
        if layer is None:
            continue  # reported by test_every_part_has_a_layer
        for target, line in sorted(imported_parts(path)):
            target_layer = LAYER_OF.get(target)
            if target_layer is not None and target_layer > layer:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {part} (layer {layer}) "
                                  f"imports {target} (layer {target_layer})")
    assert not violations, "imports from a higher layer:\n" + "\n".join(violations)


def test_parts_import_each_other_without_cycles():
    graph: Dict[str, Set[str]] = {}
    for path in module_files():
        if path == PACKAGE / "__init__.py":
            continue
        part = part_of(path)
        graph.setdefault(part, set()).update(t for t, _ in imported_parts(path) if t != part)
    cycles = []
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, stack: List[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles between parts of wespk: " + "; ".join(cycles)


def test_the_checker_sees_imports():
    # the parser must catch every import form, or the tests above could not fail
    module = PACKAGE / "data" / "dataset.py"
    parts = {part for part, _ in imported_parts(module)}
    assert {"augment", "features", "io", "data"} <= parts
    lazy = {part for part, _ in imported_parts(PACKAGE / "data" / "sampler.py")}
    assert "data" in lazy  # a function-level import

"""The shape the code keeps as it grows: imports run one way, modules stay small."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "tasks")


def _project_imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = {f"{p.parent.name}.{p.stem}" for package in PACKAGES for p in (ROOT / package).glob("*.py")}
    return {name for name in names if name in modules}


def _graph() -> dict[str, set[str]]:
    return {f"{package}.{p.stem}": _project_imports(p) for package in PACKAGES for p in (ROOT / package).glob("*.py")}


def test_no_import_circle_in_flows_and_tasks():
    graph, cycles = _graph(), []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif len(path) < len(graph):
                visit(target, path + [target])

    for module in graph:
        visit(module, [module])
    assert not cycles, cycles[0]


def test_stages_know_no_flow_and_the_store_knows_no_stage():
    graph = _graph()
    assert not any(target.startswith("flows.") for module, targets in graph.items()
                   if module.startswith("tasks.") for target in targets)
    assert graph["tasks.store"] <= {"tasks.dataset", "tasks.parquet_layout", "tasks.lineage", "tasks.errors",
                                    "tasks.faults"}
    assert graph["tasks.errors"] == set()  # a leaf: every module may say what went wrong


def test_no_module_over_300_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for package in PACKAGES for p in (ROOT / package).glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 300} == {}

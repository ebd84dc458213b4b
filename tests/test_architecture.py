"""The shape the code keeps as it grows: small modules. (Which part may import which is
import-linter's layers contract in pyproject.toml, run by `lint-imports` in CI.)"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300


def test_no_module_over_300_lines():
    modules = [p for package in ("flows", "tasks") for p in (ROOT / package).rglob("*.py")]
    assert len(modules) > 50  # the glob reaches into the parts' folders
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in modules}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}

"""Arrows point down: the engine imports nothing from the UI (tui, textual, rich), and the TUI
reaches the engine only through engine.Lab (and its errors)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_engine_imports_nothing_from_the_ui():
    files = sorted((ROOT / "engine").rglob("*.py"))
    assert files
    for f in files:
        for mod in imports(f):
            top = mod.split(".")[0]
            assert top not in ("tui", "textual", "rich"), f"{f.relative_to(ROOT)} imports {mod}"


def test_importing_the_engine_loads_no_ui_module():
    code = "import sys, engine; bad = [m for m in sys.modules if m.split('.')[0] in ('tui', 'textual', 'rich')]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_app_and_panels_use_only_engine_lab_and_its_errors():
    allowed = {"engine"}  # `from engine import Lab, LabError`: the package's public face only
    for f in [ROOT / "tui" / "app.py", ROOT / "tui" / "dialogs.py", ROOT / "tui" / "state.py",
              *sorted((ROOT / "tui" / "panels").glob("*.py"))]:
        for mod in imports(f):
            if mod.split(".")[0] == "engine":
                assert mod in allowed, f"{f.relative_to(ROOT)} imports {mod}: call engine.Lab instead"

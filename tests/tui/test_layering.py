"""Arrows point down. The contracts live in pyproject.toml ([tool.importlinter]) and import-linter
checks them: the engine imports nothing from the UI (tui, textual, rich); the UI reaches the
engine only through its package face (engine.Lab and its errors); tui is layered cli > app >
dialogs > panels > widgets > host | render > state; panels and dialogs never import each other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tui.app import SrlabApp
from tui.host import Host

ROOT = Path(__file__).resolve().parents[2]

LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def test_import_contracts_are_kept():
    out = subprocess.run([sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_importing_the_engine_loads_no_ui_module():
    code = "import sys, engine; bad = [m for m in sys.modules if m.split('.')[0] in ('tui', 'textual', 'rich')]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_app_is_what_panels_and_dialogs_expect_of_their_host(lab):
    assert isinstance(SrlabApp(lab), Host)

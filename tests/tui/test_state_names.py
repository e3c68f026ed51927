"""The app names the engine's states only through engine's enums (Protection, Failover, JobState):
no state string literal in tui/ (the command line, tui/cli.py, is not the app's)."""

from __future__ import annotations

import ast
from pathlib import Path

import tui
from engine import Failover, JobState, Protection

TUI = Path(tui.__file__).parent
STATE_NAMES = {s.value for enum in (Protection, Failover, JobState) for s in enum if s.value}


def test_no_state_name_is_spelled_out_in_the_app():
    bad = []
    for path in sorted(TUI.rglob("*.py")):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # a panel's id may be a word that is also a state ("protected"): it names the panel
        ids = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "PANEL_ID" for t in node.targets)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATE_NAMES
                    and id(node) not in ids):
                bad.append(f"{path.relative_to(TUI.parent)}:{node.lineno}: {node.value!r}")
    assert not bad, "state names spelled out (use engine.Protection / Failover / JobState):\n" + "\n".join(bad)

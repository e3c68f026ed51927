"""tui/ uses Textual's public API only, so a Textual upgrade breaks it loudly here, not quietly.

No `x._name` that tui does not define itself; no tui subclass of a Textual class that defines a
name Textual uses privately in that class; and the less common public pieces the app leans on
(action parsing, binding normalisation, the screen's bindings signal, Static.content) still
behave as the app expects."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path

import tui
from textual.actions import parse
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

TUI = Path(tui.__file__).parent
SOURCES = sorted(TUI.rglob("*.py"))


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def own_private_names() -> set[str]:
    """Private names tui defines: its functions, classes and attributes it assigns."""
    out: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
    return {n for n in out if private(n)}


def test_tui_touches_no_private_textual_name():
    own = own_private_names()
    bad = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in own:
                bad.append(f"{path.relative_to(TUI.parent)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textual"):
                bad += [f"{path.relative_to(TUI.parent)}:{node.lineno}: {node.module}.{a.name}"
                        for a in node.names if private(a.name)]
            if isinstance(node, ast.ImportFrom) and any(private(p) for p in (node.module or "").split(".")):
                bad.append(f"{path.relative_to(TUI.parent)}:{node.lineno}: {node.module}")
    assert not bad, "Textual private API used in tui/:\n" + "\n".join(bad)


@functools.cache
def privates_of(base: type) -> frozenset[str]:
    """Private names one Textual class defines or assigns on self (many tui classes share a base:
    each base's source is read once)."""
    names = {n for n in vars(base) if private(n)}
    names |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*(?::[^=\n]*)?=", inspect.getsource(base)))
    return frozenset(names)


def textual_privates(cls: type) -> set[str]:
    """Private names the Textual classes in cls's MRO define or assign on self."""
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__.split(".")[0] != "textual":
            continue
        names |= privates_of(base)
    return names


def names_defined_in(cls: type) -> set[str]:
    """Private names cls's own source defines: methods, class attributes, attributes on self."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    out: set[str] = set()
    for node in ast.walk(body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
    for node in body.body:  # class-level names (not a method's locals)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return {n for n in out if private(n)}


def tui_textual_classes() -> list[type]:
    mods = [importlib.import_module(m.name) for m in pkgutil.walk_packages(tui.__path__, "tui.")
            if m.name != "tui.cli"]
    return [c for mod in mods for c in vars(mod).values()
            if inspect.isclass(c) and c.__module__ == mod.__name__
            and any(b.__module__.split(".")[0] == "textual" for b in c.__mro__)]


def test_no_tui_class_shadows_a_private_textual_name():
    classes = tui_textual_classes()
    assert len(classes) > 10
    bad = []
    for cls in classes:
        clash = names_defined_in(cls) & textual_privates(cls)
        if clash:
            bad.append(f"{cls.__module__}.{cls.__name__}: {sorted(clash)}")
    assert not bad, "tui classes reuse names Textual uses privately:\n" + "\n".join(bad)


def test_the_public_textual_api_the_app_leans_on():
    # App.run_action's namespaces (tui.app.SrlabApp.run_action says why an action is disabled)
    assert parse("advance(900)") == ("", "advance", (900,))
    assert parse("app.show_panel('jobs')") == ("app", "show_panel", ("jobs",))
    # a keymap's keys as Textual binds them (the tab bar shows a remapped panel key)
    assert [b.key for b in Binding.make_bindings([Binding("?,T", "help")])] == ["question_mark", "T"]
    # the key bar follows its screen's bindings
    assert "bindings_updated_signal" in inspect.getsource(Screen.__init__)
    # panes update only when their text changed
    assert isinstance(inspect.getattr_static(Static, "content"), property)
    # the app keeps what it gave the keymap
    assert {"set_keymap", "update_keymap"} <= set(vars(App))

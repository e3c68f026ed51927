"""The Textual app: the whole lab under your fingers, keyboard first, k9s conventions.

Threading: the UI thread never calls the lab. Every engine call (commands, the clock's
`lab.run`, and the queries that follow each one) runs in a thread worker under one lock, and
hands back a plain-data `LabState` that the panels diff into their tables.
"""

from __future__ import annotations

import os
import threading
import time
from functools import partial
from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, Keymap
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Input, Static

from engine import Lab, LabError

from .dialogs import HelpScreen, VmDetailScreen, dialog_for
from .plan_dialogs import plan_dialog_for
from .host import DialogRequest
from .panels import PANELS
from .panels.base import Panel
from .state import LabState, collect, fmt_duration, fmt_time
from .widgets import FilterInput, KeyBar, LabTable

SPEEDS = [1, 10, 60, 600]
# actions of the global priority bindings (not esc: see BINDINGS)
_GLOBAL_KEY_ACTIONS = {"show_panel", "help", "filter", "pause", "resume", "advance", "faster", "slower",
                       "toggle_theme", "quit"}
DARK, LIGHT = "textual-dark", "textual-light"

# Global actions: (binding id, palette title, help). Keys live in BINDINGS (remappable by id).
GLOBAL_HELP = [
    ("help", "Keys of this panel", "show the keys of the current panel and why disabled ones are disabled"),
    ("filter", "Filter table", "filter the current table by text (enter keeps it, esc clears it)"),
    ("back", "Back", "close the filter, leave a drill-down, or go back to the previous panel"),
    ("clock.pause", "Pause the lab clock", "stop lab time (nothing happens while paused)"),
    ("clock.resume", "Resume the lab clock", "lab time runs at the chosen speed"),
    ("clock.faster", "Clock faster", "next speed: 1x, 10x, 60x, 600x"),
    ("clock.slower", "Clock slower", "previous speed: 600x, 60x, 10x, 1x"),
    ("clock.advance_15m", "Advance 15 minutes", "run 15 minutes of lab time now, as fast as the machine can"),
    ("clock.advance_1h", "Advance 1 hour", "run 1 hour of lab time now, as fast as the machine can"),
    ("theme", "Light / dark theme", "switch between the light and the dark theme"),
    ("quit", "Quit", "leave srlab (the lab stays as it is)"),
]


def parse_keymap(text: str) -> dict[str, str]:
    """SRLAB_KEYMAP="clock.advance_15m=f9;panel.jobs=j,J": binding id = key(s), `;` between."""
    out: dict[str, str] = {}
    for part in text.replace("\n", ";").split(";"):
        if "=" in part:
            bid, keys = part.split("=", 1)
            if bid.strip() and keys.strip():
                out[bid.strip()] = keys.strip()
    return out


class SrlabCommands(Provider):
    """Command palette (ctrl+p): every action of every panel and every global action.

    Actions not allowed now are listed with the engine's reason; choosing one says why."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        assert isinstance(app, SrlabApp)
        return app.palette_commands()

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class AppBar(Horizontal):
    """Top line: the lab's name on the left, the lab clock and its speed on the right."""

    DEFAULT_CSS = """
    AppBar { height: 1; background: $panel; }
    AppBar > #bar-title { width: 1fr; padding: 0 1; }
    AppBar > #bar-clock { width: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("srlab", id="bar-title")
        yield Static("", id="bar-clock")


class TabBar(Static):
    """Second line: the panels and their keys, the current one highlighted."""

    DEFAULT_CSS = """
    TabBar { height: 1; background: $boost; }
    """


class SrlabApp(App):
    TITLE = "srlab"
    CSS_PATH = "srlab.tcss"
    COMMANDS = App.COMMANDS | {SrlabCommands}

    # The global keys are priority bindings: each acts as it arrives, in order with the keys
    # around it, even when several arrive in one read (laggy SSH, a paste): "3/SC01" opens
    # Resources, then the filter, then types "SC01" into it. They step aside (check_action)
    # in dialogs and while text is typed into a field. esc stays a normal binding: fields,
    # lists and dialogs use it first.
    BINDINGS = [
        *[
            Binding(p.KEY, f"show_panel('{p.PANEL_ID}')", p.TITLE, show=False, id=f"panel.{p.PANEL_ID}",
                    priority=True)
            for p in PANELS
        ],
        Binding("question_mark", "help", "Help", key_display="?", id="help", priority=True),
        Binding("slash", "filter", "Filter", key_display="/", id="filter", priority=True),
        Binding("escape", "back", "Back", show=False, id="back"),
        Binding("p", "pause", "Pause", id="clock.pause", priority=True),
        Binding("p", "resume", "Run", id="clock.resume", priority=True),
        Binding("t", "advance(900)", "+15m", id="clock.advance_15m", priority=True),
        Binding("T,shift+t", "advance(3600)", "+1h", key_display="T", id="clock.advance_1h", priority=True),
        Binding("plus,equals_sign", "faster", "Faster", key_display="+", show=False, id="clock.faster",
                priority=True),
        Binding("minus", "slower", "Slower", key_display="-", show=False, id="clock.slower", priority=True),
        Binding("ctrl+t", "toggle_theme", "Theme", show=False, id="theme", priority=True),
        Binding("q", "quit", "Quit", id="quit", priority=True),
    ]

    def __init__(
        self,
        lab: Lab,
        observer: bool = False,
        *,
        clock_running: bool = True,
        speed: int = 60,
        poll: float | None = 1.0,
        theme: str | None = None,
        animations: bool = True,
    ):
        super().__init__()
        self.lab = lab
        self.observer = observer
        self.observer_why = "opened with --observer" if observer else ""
        self.clock_running = clock_running and not observer
        self.speed = speed if speed in SPEEDS else 60
        self.poll = poll
        self.state = LabState()
        self.status_colors = {"ok": "green", "warning": "yellow", "error": "red", "accent": "cyan"}
        self.busy_action = ""
        self.last_refusal: str | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._clock_inflight = False
        self._debt = 0.0
        self._last_tick = time.monotonic()
        self._last_poll = time.monotonic()
        self._history: list[str] = []
        self._current = "dashboard"
        self._bindings_sig: Any = None
        self._filter_table: LabTable | None = None
        self.key_overrides: dict[str, str] = {}  # binding id -> keys, as given to set_keymap / update_keymap
        # SRLAB_THEME=light|dark (or any Textual theme name) picks the theme; ctrl+t switches.
        theme = theme or os.environ.get("SRLAB_THEME", "")
        theme = {"light": LIGHT, "dark": DARK}.get(theme, theme)
        self.theme = theme if theme in self.available_themes else DARK
        if not animations:
            self.animation_level = "none"

    # ---- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield AppBar(id="appbar")
        yield TabBar("", id="tabbar")
        with ContentSwitcher(initial="dashboard", id="panels"):
            for cls in PANELS:
                yield cls()
        yield FilterInput(placeholder="filter: type to filter, enter keeps it, esc clears", id="filter-input")
        yield KeyBar(id="keybar")

    def on_mount(self) -> None:
        keymap = parse_keymap(os.environ.get("SRLAB_KEYMAP", ""))
        if keymap:
            self.set_keymap(keymap)
        self._update_colors()
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self._update_bars()
        self.set_interval(0.5, self._tick)
        self.panel().focus_default()
        self.engine_call("open", self._startup, on_done=self._started, mutates=False, quiet=True)

    def _startup(self, lab: Lab) -> str | None:
        """In the engine thread: take the lab's clock. None if we have it, else who has it
        (a second srlab on the same lab opens as an observer)."""
        if self.observer or lab.acquire_clock():
            return None
        return f"pid {lab.clock_holder()}"

    def _started(self, holder: str | None) -> None:
        if holder is not None:
            self.observer = True
            self.clock_running = False
            self.observer_why = f"another srlab process ({holder}) drives this lab's clock"
            self.notify(f"Another srlab process ({holder}) drives this lab's clock: opened as observer, "
                        "watch only.", title="observer", severity="warning", timeout=10)
        self._update_bars()
        self.refresh_bindings()

    def on_unmount(self) -> None:
        if not self.observer:
            with self._lock:
                try:
                    self.lab.release_clock()
                except Exception:  # closing: nothing useful to do
                    pass

    def panel(self, panel_id: str | None = None) -> Panel:
        return self.query_one(f"#{panel_id or self._current}", Panel)

    def panels(self) -> list[Panel]:
        return list(self.query(Panel))

    def _theme_changed(self, _theme) -> None:
        self._update_colors()
        if self.state.loaded:
            self.apply_state(self.state)
        self._update_bars()

    def _update_colors(self) -> None:
        v = self.get_css_variables()
        self.status_colors = {
            "ok": v.get("success", "green"),
            "warning": v.get("warning", "yellow"),
            "error": v.get("error", "red"),
            "accent": v.get("accent", "cyan"),
        }

    def _update_bars(self) -> None:
        if not self.is_mounted:
            return
        try:
            title = self.query_one("#bar-title", Static)
            clock = self.query_one("#bar-clock", Static)
            tabs = self.query_one("#tabbar", TabBar)
        except Exception:
            return
        st = self.state.status
        left = Text.assemble(("srlab", "bold"), "  ")
        left.append(Text(str(st.get("name") or "")))
        left.no_wrap = True
        left.overflow = "ellipsis"
        title.update(left)
        c = self.status_colors
        right = Text()
        if self.observer:
            right.append(" OBSERVER ", style=f"bold reverse {c['warning']}")
            right.append(" ")
        if self.busy_action:
            right.append(f"{self.busy_action}… ", style=c["accent"])
        if self.clock_running:
            right.append("▶ ", style=f"bold {c['ok']}")
        elif not self.observer:
            right.append(" PAUSED ", style=f"bold reverse {c['warning']}")
            right.append(" ")
        right.append(fmt_time(self.state.now) if self.state.loaded else "loading…", style="bold")
        if not self.observer:
            right.append(f" · {self.speed}x")
        clock.update(right)
        wide = self.size.width >= 100
        t = Text(no_wrap=True, overflow="ellipsis")
        for cls in PANELS:
            label = cls.TITLE if (wide or cls.PANEL_ID != "plans") else "Plans"
            style = f"bold reverse {c['accent']}" if cls.PANEL_ID == self._current else ""
            t.append(f" {self.get_key_display_for(f'panel.{cls.PANEL_ID}', cls.KEY)} {label} ", style=style or None)
        tabs.update(t)

    def set_keymap(self, keymap: Keymap) -> None:
        self.key_overrides = dict(keymap)
        super().set_keymap(keymap)

    def update_keymap(self, keymap: Keymap) -> None:
        self.key_overrides = {**self.key_overrides, **keymap}
        super().update_keymap(keymap)

    def get_key_display_for(self, binding_id: str, default: str) -> str:
        """The first key bound to `binding_id` by the keymap (by its Textual name, as bound:
        "?" is "question_mark"), else `default`."""
        keys = self.key_overrides.get(binding_id)
        if not keys:
            return default
        first = keys.split(",")[0].strip()
        return next(iter(Binding.make_bindings([Binding(first, "")]))).key if first else first

    def on_resize(self) -> None:
        self._update_bars()

    # ---- the engine worker -------------------------------------------------------------------

    def engine_call(
        self,
        label: str,
        fn: Callable[[Lab], Any] | None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        mutates: bool = True,
        quiet: bool = False,
    ) -> None:
        """Run `fn(lab)` in the engine thread, then re-read the lab; callbacks run in the UI."""
        if mutates and self.observer:
            err = LabError(self.observer_reason())
            if on_error:
                on_error(err)
            else:
                self.report_refusal(err)
            return
        self._inflight += 1
        if not quiet:
            self.busy_action = label
            self._update_bars()
        self._engine_worker(label, fn, on_done, on_error, quiet)

    @work(thread=True, group="engine", exit_on_error=False, description="engine call")
    def _engine_worker(self, label, fn, on_done, on_error, quiet) -> None:
        result: Any = None
        err: BaseException | None = None
        state: LabState | None = None
        with self._lock:
            if fn is not None:
                try:
                    result = fn(self.lab)
                except Exception as e:  # LabError: refused; anything else: shown, never a traceback
                    err = e
            try:
                state = collect(self.lab)
            except Exception as e:
                if err is None:
                    err = e
        try:
            self.call_from_thread(self._finish, label, result, err, state, on_done, on_error, quiet)
        except RuntimeError:  # the app is closing
            pass

    def _finish(self, label, result, err, state, on_done, on_error, quiet) -> None:
        self._inflight -= 1
        if not quiet and self.busy_action == label:
            self.busy_action = ""
        if state is not None:
            self.apply_state(state)
        if err is not None:
            if on_error is not None:
                on_error(err)
            else:
                self.report_refusal(err, label)
        elif on_done is not None:
            on_done(result)
        self._update_bars()

    def report_refusal(self, err: BaseException, label: str = "") -> None:
        if isinstance(err, LabError):
            msg = err.message + (f"\n{err.hint}" if err.hint else "")
            self.last_refusal = msg
            self.notify(msg, title=label or "not done", severity="warning", timeout=8)
        else:
            msg = f"{type(err).__name__}: {err}"
            self.last_error = msg
            self.log.error(msg)
            self.notify(msg, title=f"{label}: unexpected error", severity="error", timeout=10)

    def refresh_state(self) -> None:
        self.engine_call("refresh", None, mutates=False, quiet=True)

    def apply_state(self, state: LabState) -> None:
        self.state = state
        for p in self.panels():
            p.update_state(state)
        if isinstance(self.screen, VmDetailScreen):
            self.screen.update_state(state)
        self._update_bars()
        sig = (tuple(sorted(state.allowed.items(), key=repr)), tuple((j["id"], j.get("state")) for j in state.jobs))
        if sig != self._bindings_sig:
            self._bindings_sig = sig
            self.refresh_bindings()

    # ---- the lab clock -----------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed, self._last_tick = now - self._last_tick, now
        if self.clock_running and not self.observer:
            self._debt = min(self._debt + elapsed * self.speed, self.speed * 3.0)
            if self._clock_inflight or not self.state.loaded:
                return
            seconds = int(self._debt)
            if seconds < 1:
                return
            self._debt -= seconds
            self._clock_inflight = True
            self.engine_call("clock", lambda lab: lab.run(seconds), on_done=self._clock_done,
                             on_error=self._clock_failed, quiet=True)
        elif self.poll and now - self._last_poll >= self.poll and self._inflight == 0:
            self._last_poll = now
            self.refresh_state()

    def _clock_done(self, _result) -> None:
        self._clock_inflight = False

    def _clock_failed(self, err: BaseException) -> None:
        self._clock_inflight = False
        self.clock_running = False
        self.report_refusal(err, "lab clock paused")

    def observer_reason(self) -> str:
        how = ("open it without --observer to act" if self.observer_why.startswith("opened with")
               else "act there, or close it and open this lab again")
        return f"observer view ({self.observer_why}): this srlab only watches the lab; {how}"

    def clock_reason(self) -> str | None:
        if self.observer:
            return f"observer view: {self.observer_why}; lab time is driven elsewhere"
        return None

    def action_pause(self) -> None:
        self.clock_running = False
        self._debt = 0.0
        self._update_bars()
        self.refresh_bindings()

    def action_resume(self) -> None:
        self.clock_running = True
        self._last_tick = time.monotonic()
        self._update_bars()
        self.refresh_bindings()

    def action_faster(self) -> None:
        i = SPEEDS.index(self.speed)
        self.set_speed(SPEEDS[min(i + 1, len(SPEEDS) - 1)])

    def action_slower(self) -> None:
        i = SPEEDS.index(self.speed)
        self.set_speed(SPEEDS[max(i - 1, 0)])

    def set_speed(self, speed: int) -> None:
        self.speed = speed
        self._debt = min(self._debt, float(speed))
        self._update_bars()

    def action_set_speed(self, speed: int) -> None:
        self.set_speed(int(speed))

    def action_advance(self, seconds: int) -> None:
        seconds = int(seconds)
        self.engine_call(f"advancing {fmt_duration(seconds)}", lambda lab: lab.run(seconds),
                         on_done=lambda r: None)

    # ---- panels and navigation ---------------------------------------------------------------

    def action_show_panel(self, panel_id: str) -> None:
        while len(self.screen_stack) > 1 and isinstance(self.screen, VmDetailScreen):
            self.pop_screen()
        self._close_filter(clear=False)
        if panel_id != self._current:
            self._history.append(self._current)
            self._history = self._history[-20:]
        self._current = panel_id
        self.query_one("#panels", ContentSwitcher).current = panel_id
        self.panel().focus_default()
        self._update_bars()
        self.refresh_bindings()

    def action_back(self) -> None:
        if self._close_filter(clear=True):
            return
        panel = self.panel()
        table = panel.filter_table()
        if table is not None and table.filter_text:
            table.set_filter("")
            panel.table_changed()
            return
        if panel.back():
            return
        if self._history:
            prev = self._history.pop()
            self._current = prev
            self.query_one("#panels", ContentSwitcher).current = prev
            self.panel().focus_default()
            self._update_bars()
            self.refresh_bindings()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_text(self.panel()), f"Keys: {self.panel().TITLE}"))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme != LIGHT else DARK

    # ---- the / filter ------------------------------------------------------------------------

    def action_filter(self) -> None:
        table = self.panel().filter_table()
        if table is None:
            self.notify("Nothing to filter on this panel.", timeout=3)
            return
        self._filter_table = table
        box = self.query_one("#filter-input", FilterInput)
        box.value = table.filter_text
        box.add_class("-active")
        # Focus now, not after the queued keys: over SSH "/SC01" can arrive in one packet, and
        # its "1" must be typed into the filter, not switch to the dashboard.
        self.screen.set_focus(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter-input" and self._filter_table is not None:
            self._filter_table.set_filter(event.value)
            self.panel().table_changed()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter-input":
            self._close_filter(clear=False)

    def _close_filter(self, clear: bool) -> bool:
        box = self.query_one("#filter-input", FilterInput)
        if not box.has_class("-active"):
            return False
        table = self._filter_table
        if clear and table is not None:
            table.set_filter("")
            self.panel().table_changed()
        box.remove_class("-active")
        if table is not None:
            self.screen.set_focus(table)  # at once, for the keys already queued after enter
        self._filter_table = None
        return True

    # ---- actions: enabled, disabled with a reason --------------------------------------------

    def _typing_or_in_dialog(self) -> bool:
        """Keys belong to the dialog on top, or to the field being typed into."""
        return isinstance(self.screen, ModalScreen) or isinstance(self.focused, Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _GLOBAL_KEY_ACTIONS and self._typing_or_in_dialog():
            return False
        if action == "pause":
            return (True if self.clock_running else False) if not self.observer else None
        if action == "resume":
            return (False if self.clock_running else True) if not self.observer else None
        if action in ("advance", "faster", "slower", "set_speed"):
            return None if self.clock_reason() else True
        if action == "filter" and len(self.screen_stack) > 1:
            return False  # the / filter works on the panels' tables, not on a drill-down screen
        return True

    def disabled_reason(self, action: str) -> str | None:
        if action in ("pause", "resume", "advance", "faster", "slower", "set_speed"):
            return self.clock_reason()
        return None

    def resolve_namespace(self, destination: str, default_namespace: DOMNode | None, namespaces) -> DOMNode | None:
        """The node an action runs on, resolved as App.run_action does (None: unknown, let it say)."""
        if not destination:
            return self if default_namespace is None else default_namespace
        if namespaces and destination in namespaces:
            return namespaces[destination]
        if destination == "app":
            return self
        if destination == "screen":
            return self.screen
        if destination == "focused":
            return self.focused
        return None

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """As App.run_action, but an action that is disabled now says why instead of doing nothing."""
        destination, name, params = action if isinstance(action, tuple) else parse_action(action)
        target = self.resolve_namespace(destination, default_namespace, namespaces)
        if target is not None and target.check_action(name, params) is None:
            why = target.disabled_reason(name) if isinstance(target, Panel) else (
                self.disabled_reason(name) if target is self else None)
            if why:
                self.last_refusal = why
                self.notify(why, title="not allowed now", severity="warning", timeout=6)
                return True
        return await super().run_action(action, default_namespace, namespaces)

    # ---- palette and help --------------------------------------------------------------------

    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        out: list[tuple[str, str, Callable[[], Any]]] = []
        for cls in PANELS:
            panel = self.panel(cls.PANEL_ID)
            key = self.get_key_display_for(f"panel.{cls.PANEL_ID}", cls.KEY)
            out.append((f"Go to {cls.TITLE}", f"key {key}", partial(self.run_action, f"show_panel('{cls.PANEL_ID}')")))
            for a in cls.ACTIONS:
                why = panel.disabled_reason(a.id)
                keyd = self.action_key(cls, a.id)
                help_text = f"{cls.TITLE} · key {keyd} · {a.help}"
                if why:
                    help_text += f" — not now: {why}"
                out.append((f"{a.title}", help_text, partial(self._palette_run, cls.PANEL_ID, a.id)))
        for bid, title, help_text in GLOBAL_HELP:
            binding = next((b for b in Binding.make_bindings(self.BINDINGS) if b.id == bid), None)
            if binding is None:
                continue
            why = self.disabled_reason(parse_action(binding.action)[1])
            h = f"key {self.get_key_display(binding)} · {help_text}" + (f" — not now: {why}" if why else "")
            out.append((title, h, partial(self.run_action, binding.action)))
        for s in SPEEDS:
            why = self.clock_reason()
            out.append((f"Clock speed {s}x", "lab seconds per real second" + (f" — not now: {why}" if why else ""),
                        partial(self.run_action, f"set_speed({s})")))
        return out

    def action_key(self, panel: type[Panel], action_id: str) -> str:
        """The key of a panel's action as its binding declares it."""
        binding = next(b for b in Binding.make_bindings(panel.BINDINGS) if b.action == action_id)
        return self.get_key_display(binding)

    def show_dialog(self, request: DialogRequest, callback: Callable[[Any], None] | None = None) -> None:
        """Open what a panel asks for (see tui.host) on the current lab state."""
        self.push_screen(plan_dialog_for(request, self.state) or dialog_for(request, self.state), callback)

    async def _palette_run(self, panel_id: str, action_id: str) -> None:
        if panel_id != self._current:
            self.action_show_panel(panel_id)
        await self.run_action(action_id, self.panel(panel_id))

    def help_text(self, panel: Panel) -> Text:
        t = Text()
        t.append(f"{panel.TITLE} ({panel.KEY})\n", style="bold")
        if not panel.ACTIONS:
            t.append("  no actions here: this panel shows the lab\n", style="dim")
        for a in panel.ACTIONS:
            key = self.action_key(type(panel), a.id)
            why = panel.disabled_reason(a.id)
            t.append(f"  {key:<7}", style=f"bold {self.status_colors['accent']}" if not why else "dim")
            t.append(a.title, style="bold" if not why else "")
            t.append(f"  {a.help}\n", style="dim")
            if why:
                t.append("         not now: ", style=self.status_colors["warning"])
                t.append(Text(why))
                t.append("\n")
        t.append("\nEverywhere\n", style="bold")
        rows = [
            ("1-6", "panels: " + ", ".join(f"{p.KEY} {p.TITLE}" for p in PANELS)),
            ("?", "this help"),
            ("/", "filter the current table (enter keeps, esc clears)"),
            ("esc", "back: close filter / leave drill-down / previous panel"),
            ("p", "pause / resume the lab clock"),
            ("+ -", f"clock speed ({', '.join(f'{s}x' for s in SPEEDS)})"),
            ("t T", "advance lab time 15 minutes / 1 hour now"),
            ("ctrl+p", "command palette: every action by name"),
            ("ctrl+t", "light / dark theme"),
            ("q", "quit"),
            ("tab", "next field or table; shift+tab previous"),
        ]
        for k, what in rows:
            t.append(f"  {k:<7}", style=f"bold {self.status_colors['accent']}")
            t.append(f"{what}\n")
        why = self.clock_reason()
        if why:
            t.append(f"\n{why}\n", style=self.status_colors["warning"])
        for p in self.state.problems[:5]:
            t.append(f"\nengine query failed: {p}", style=self.status_colors["error"])
        return t

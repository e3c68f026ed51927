"""The Textual app: the whole lab under your fingers, keyboard first, k9s conventions.

Threading: the UI thread never calls the lab. One engine thread (a Textual thread worker that
lives as long as the app) makes every call to the lab, in the order they were asked for:
commands first, then the lab clock's next slice; after each it reads a plain-data `LabState`
that the panels diff into their tables.

The lab clock is honest: a slice is at most one refresh interval (FRAME) of lab time at the
chosen speed, run in pieces of PIECE lab seconds; pause, or an action asked for, stops the slice
at the end of the piece in flight, so at most PIECE lab seconds pass after the key before the
pause or the action; a machine that cannot keep up shows "behind" and the rate it really
achieves instead of jumping ahead.

Keys are handled one at a time, each once the previous one has taken effect (the widgets it
went through have handled it, a dialog it opened is up, a dialog it confirmed has its answer
from the engine): keys that arrive in one read over a slow link act as if typed slowly.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from rich.text import Text
from textual import events, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, Keymap
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Input, Static
from textual.worker import get_current_worker

from engine import Lab, LabError

from .dialogs import HelpScreen, VmDetailScreen, dialog_for
from .plan_dialogs import plan_dialog_for
from .host import CommandOutput, DialogRequest, RunForForm, VmDetails
from .panels import PANELS
from .panels.base import Panel
from .state import LabState, clock_holder_gone, collect, collect_first, fmt_duration, fmt_time, job_ids_of
from .widgets import AppBar, CommandInput, FilterInput, KeyBar, LabTable

SPEEDS = [1, 10, 60, 600]
FRAME = 0.25  # real seconds: the lab clock's refresh interval (a slice is speed x FRAME lab seconds)
RATE_WINDOW = 2.0  # real seconds over which the clock's real rate is measured
FULL_READ = 1.0  # real seconds between full reads of the lab while the clock runs
WHOLE_READ = 10.0  # real seconds between reads that judge every action again, changed or not
READ_GAP = 2.0  # a clock slice reads the lab only once this many times the last read's cost has passed
PIECE = 30  # lab seconds: a slice runs in pieces this long, and stops between them for a call or a pause
HOLD = 0.05  # real seconds the engine thread waits at most between VMs for a key in flight
GC_EVERY = 5.0  # real seconds between the app's own full collections (see _collect_garbage)
BEHIND = 0.8  # below this share of the chosen speed, the header says "behind" and the real rate
# actions of the global priority bindings (not esc: see BINDINGS)
_GLOBAL_KEY_ACTIONS = {"show_panel", "help", "filter", "command_line", "pause", "resume", "take_over", "advance",
                       "run_for", "faster", "slower", "toggle_theme", "quit"}
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
    ("clock.run_for", "Run for a duration", "run lab time for a duration you type (90s, 15m, 2h, 1d), as srlab run"),
    ("clock.take_over", "Take over the lab clock",
     "observer: the srlab that drove this lab's clock has gone; drive it from here"),
    ("command", "Command line", "run one of srlab's commands on this lab (:failover MYWSV01 --kind test)"),
    ("theme", "Light / dark theme", "switch between the light and the dark theme"),
    ("quit", "Quit", "leave srlab (the lab stays as it is)"),
]


# The command line's commands an observer may run: they only read the lab (verify and export
# write scratch files and the folder you name, never the lab's state).
READ_ONLY_COMMANDS = {"status", "resources", "points", "jobs", "job", "verify", "export", "help", "--help", "-h"}


def is_read_only_command(line: str) -> bool:
    words = [w for w in line.split() if not w.startswith("-")]
    return not words or words[0] in READ_ONLY_COMMANDS or "--help" in line.split() or "-h" in line.split()


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


class TabBar(Static):
    """Second line: the panels and their keys, the current one highlighted."""

    DEFAULT_CSS = """
    TabBar { height: 1; background: $boost; }
    """


# ---- the engine thread's plumbing ---------------------------------------------------------------


class WallClock:
    """Real time, which paces the lab clock. Tests give the app a manual one instead
    (tests/tui/helpers.ManualWall) and move it themselves: no test sleeps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float) -> None:
        cond.wait(timeout)


class Pace:
    """How much lab time the clock owes at the chosen speed, and the rate the machine really
    achieves. The engine thread's alone."""

    def __init__(self) -> None:
        self.last: float | None = None  # real time up to which lab time is accounted for
        self.last_slice = 0.0
        self.started = 0.0
        self.owed = 0.0
        self.done: deque[tuple[float, int]] = deque()  # (real time, lab seconds) of each slice

    def stop(self) -> None:
        self.last = None
        self.owed = 0.0
        self.done.clear()

    def due(self, now: float, speed: int) -> tuple[int, float]:
        """(lab seconds to run now, or 0 and the real seconds until some are due). A slice is at
        most one refresh's worth (speed x FRAME); a late one is caught up by the next slices, one
        refresh's worth each; a machine more than two refreshes behind drops what it owes."""
        if self.last is None:  # (re)started: lab time is owed from now on
            self.last = self.last_slice = self.started = now
            return 0, FRAME
        self.owed += (now - self.last) * speed
        self.last = now
        frame = max(1, round(speed * FRAME))
        if self.owed > 2 * frame:  # the machine did not keep up: it does not catch up either
            self.owed = frame
        wait = self.last_slice + FRAME - now
        if self.owed < frame and wait > 0:
            return 0, wait
        if self.owed < 1:
            return 0, (1 - self.owed) / speed
        step = min(int(self.owed), frame)
        self.owed -= step
        self.last_slice = now
        return step, 0.0

    def ran(self, now: float, step: int, done: int) -> None:
        """A slice of `step` lab seconds ran `done` of them (it stops early for a call or a pause):
        what it did not run is owed again."""
        self.owed += step - done
        if done:
            self.done.append((now, done))

    def rate(self, now: float) -> float | None:
        """Lab seconds per real second over the last RATE_WINDOW (None until one has passed)."""
        while self.done and self.done[0][0] <= now - RATE_WINDOW:
            self.done.popleft()
        if self.last is None or now - self.started < RATE_WINDOW:
            return None
        return sum(s for _, s in self.done) / RATE_WINDOW


@dataclass
class EngineCall:
    """One call the engine thread makes: fn(lab), then the lab state; callbacks in the UI."""

    label: str
    fn: Callable[[Lab], Any] | None
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    quiet: bool
    shown: int  # the lab time on the screen when it was asked for
    applied: int | None = None  # the lab time when the engine thread applied it
    read: bool = True  # then read the lab (False: the call's result is all the UI needs)


class EngineDone(Message):
    """From the engine thread: a call's result (or a clock slice's), and the lab state after it."""

    def __init__(self, seq: int, call: EngineCall | None, result: Any, err: BaseException | None,
                 state: LabState | None, rate: float | None, holder_gone: bool, now: int | None = None) -> None:
        super().__init__()
        self.seq, self.call, self.result, self.err, self.state = seq, call, result, err, state
        self.rate, self.holder_gone = rate, holder_gone
        self.now = now  # without a state: the lab time after a piece of a slice (the clock only)


class EngineIdle(Message):
    """From the engine thread: nothing to do until asked, or until lab time is due."""


class SrlabApp(App):
    TITLE = "srlab"
    CSS_PATH = "srlab.tcss"
    COMMANDS = App.COMMANDS | {SrlabCommands}

    # The global keys are priority bindings: each acts as it arrives, in order with the keys
    # around it, even when several arrive in one read (laggy SSH, a paste): "3/SC01" opens
    # Resources, then the filter, then types "SC01" into it. They step aside (check_action)
    # in dialogs and while text is typed into a field. esc stays a normal binding: fields,
    # lists and dialogs use it first. enter in the filter or the command line is a priority
    # binding too: it leaves the line at once, so the keys after it act on the panel.
    BINDINGS = [
        *[
            Binding(p.KEY, f"show_panel('{p.PANEL_ID}')", p.TITLE, show=False, id=f"panel.{p.PANEL_ID}",
                    priority=True)
            for p in PANELS
        ],
        Binding("question_mark", "help", "Help", key_display="?", id="help", priority=True),
        Binding("slash", "filter", "Filter", key_display="/", id="filter", priority=True),
        Binding("colon", "command_line", "Command", key_display=":", show=False, id="command", priority=True),
        Binding("enter", "line_enter", "Enter", show=False, priority=True),
        Binding("escape", "back", "Back", show=False, id="back"),
        Binding("p", "pause", "Pause", id="clock.pause", priority=True),
        Binding("p", "resume", "Run", id="clock.resume", priority=True),
        Binding("p", "take_over", "Take over", id="clock.take_over", priority=True),
        Binding("t", "advance(900)", "+15m", id="clock.advance_15m", priority=True),
        Binding("T,shift+t", "advance(3600)", "+1h", key_display="T", id="clock.advance_1h", priority=True),
        Binding("ctrl+r", "run_for", "Run for", key_display="^r", show=False, id="clock.run_for", priority=True),
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
        wall: Any = None,
        commands: Callable[[Lab, str], tuple[int, str, str]] | None = None,
        changes: Callable[[Lab], Any] | None = None,
    ):
        super().__init__()
        self.lab = lab
        lab.between_vms = self._hold_for_key
        self.observer = observer
        self.observer_why = "opened with --observer" if observer else ""
        self.clock_running = clock_running and not observer
        self.speed = speed if speed in SPEEDS else 60
        self.poll = poll
        self.wall = wall or WallClock()
        # the command line's commands (tui.cli.run_in_app: the CLI's own parser, on this lab)
        self.commands = commands
        # what changed in the lab since the last read (engine.changes.take_lab, handed in by the
        # CLI): then a read reads only that; without it, every read reads everything
        self.changes = changes
        self.state = LabState()
        self.status_colors = {"ok": "green", "warning": "yellow", "error": "red", "accent": "cyan"}
        self.busy_action = ""
        self.last_refusal: str | None = None
        self.last_error: str | None = None
        self.proofs: dict[str, dict] = {}
        self.rate: float | None = None  # the lab clock's real rate (lab seconds per second), when known
        self.holder_gone = False  # observer: the process that drove the clock has gone
        self.last_applied: EngineCall | None = None  # the last command: lab time shown when asked, when applied
        self.last_command: tuple[str, int, str, str] | None = None  # (line, exit code, stdout, stderr)
        self._lock = threading.Lock()
        # the engine thread's queue and the clock settings it reads, under one condition
        self._cv = threading.Condition()
        self._calls: deque[EngineCall] = deque()
        self._clock_on = False  # the engine thread runs slices (set from clock_running once loaded)
        self._engine_speed = self.speed
        self._stopping = False
        self._engine_waiting = False  # the engine thread waits: nothing asked, nothing due
        self._full_read: LabState | None = None  # the engine thread's last full read of the lab
        self._full_read_at = 0.0
        self._last_read: LabState | None = None  # the engine thread's last read (unchanged VMs kept)
        self._read_cost = 0.0  # wall seconds the last read took, and when it was done (_read_owed)
        self._full_cost = 0.0  # ... the last full read took
        self._whole_read_at = -WHOLE_READ  # when everything was last read and judged again
        self._read_done_at = 0.0
        self.clock_now = 0  # the lab time on the screen: the last state's, or a slice's piece's since
        self.advancing_to: int | None = None  # t / T in flight: the lab time they go to
        self._advances = 0
        self._posted = 0  # EngineDone messages posted by the engine thread / handled by the UI
        self._handled = 0
        self._applied_seq = 0
        self._inflight = 0
        self._idle = None  # asyncio.Event, made on mount: something the waiters wait on happened
        # keys: one at a time (see on_event)
        self._key_backlog: deque[events.Key] = deque()
        # Set while no key is in flight: the engine thread waits on it between VMs (hold_for_key)
        # so that a key has Python to itself, not half of it, on a big lab with the clock running.
        self._keys_quiet = threading.Event()
        self._keys_quiet.set()
        self._key_busy = False
        self._key_screen: Any = None
        self._key_token = 0
        self._history: list[str] = []
        self._current = "dashboard"
        self._stale: set[str] = set()  # panels that missed a lab state while hidden (apply_state)
        self._catching_up: tuple[str, bool] | None = None  # a panel shown, to catch up after the paint
        self._bindings_sig: Any = None
        self._vm_screen: VmDetailScreen | None = None  # the VM detail screen, kept (show_dialog)
        self._filter_table: LabTable | None = None
        self._told_holder_gone = False
        self._gc_threshold: tuple[int, ...] | None = None  # the collector's, while the app runs its full passes
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
        yield CommandInput(placeholder="an srlab command: failover MYWSV01 --kind test · verify MYWSV01 · "
                                       "run --for 2h · help", id="command-input")
        yield KeyBar(id="keybar")

    def on_mount(self) -> None:
        import asyncio

        self._idle = asyncio.Event()
        keymap = parse_keymap(os.environ.get("SRLAB_KEYMAP", ""))
        if keymap:
            self.set_keymap(keymap)
        self._update_colors()
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self._update_bars()
        self.panel().focus_default()
        self._engine_loop()
        # the lab on the screen first (a quick read), then the slow parts: taking the clock (it
        # sweeps what a killed srlab left) and the judgement of every action
        self.engine_call("first look", collect_first, on_done=self._first_look, mutates=False, quiet=True,
                         read=False)
        self.engine_call("open", self._startup, on_done=self._started, mutates=False, quiet=True)

    def _first_look(self, state: LabState) -> None:
        if not self.state.loaded:
            self.apply_state(state)

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
        self._clock_settings()
        self._update_bars()
        self.refresh_bindings()

    def on_unmount(self) -> None:
        self._keys_quiet.set()  # the lab may go on without the app: nothing holds its engine
        if self._gc_threshold is not None:  # the collector as it was
            gc.set_threshold(*self._gc_threshold)
            gc.unfreeze()
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
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

    def behind(self) -> bool:
        """The clock runs, and the machine does less than BEHIND of the chosen speed."""
        return bool(self.clock_running and not self.observer and self.rate is not None
                    and self.rate < BEHIND * self.speed)

    def header_text(self) -> tuple[Text, Text]:
        """The top line of every screen: the lab's name; the lab clock, its speed, OBSERVER."""
        st = self.state.status
        left = Text.assemble(("srlab", "bold"), "  ")
        left.append(Text(str(st.get("name") or "")))
        left.no_wrap = True
        left.overflow = "ellipsis"
        c = self.status_colors
        right = Text()
        if self.observer:
            right.append(" OBSERVER ", style=f"bold reverse {c['warning']}")
            right.append(" ")
            if self.holder_gone and self.can_take_over():
                right.append("clock free: p takes over ", style=f"bold {c['accent']}")
        if self.busy_action:
            right.append(f"{self.busy_action}… ", style=c["accent"])
        if self.advancing_to is not None:  # t / T: where lab time is going, at once
            right.append("⏩ ", style=f"bold {c['accent']}")
        elif self.clock_running:
            right.append("▶ ", style=f"bold {c['ok']}")
        elif not self.observer:
            right.append(" PAUSED ", style=f"bold reverse {c['warning']}")
            right.append(" ")
        now = self.advancing_to if self.advancing_to is not None else self.clock_now
        right.append(fmt_time(now) if self.state.loaded else "loading…", style="bold")
        if not self.observer:
            right.append(f" · {self.speed}x")
            if self.behind():
                right.append(f" behind: {self.rate:.0f}x", style=f"bold {c['warning']}")
        return left, right

    def _update_bars(self) -> None:
        if not self.is_mounted:
            return
        left, right = self.header_text()
        for screen in self.screen_stack:
            for bar in screen.query(AppBar):
                if bar.is_mounted:
                    bar.show(left, right)
        try:
            tabs = self.query_one("#tabbar", TabBar)
        except Exception:
            return
        c = self.status_colors
        wide = self.size.width >= 100
        t = Text(no_wrap=True, overflow="ellipsis")
        for cls in PANELS:
            label = cls.TITLE if wide else (cls.SHORT_TITLE or cls.TITLE)
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

    # ---- the engine thread -------------------------------------------------------------------

    def engine_call(
        self,
        label: str,
        fn: Callable[[Lab], Any] | None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        mutates: bool = True,
        quiet: bool = False,
        read: bool = True,
    ) -> None:
        """Ask the engine thread for `fn(lab)` (after the calls asked before it, before the
        clock's next slice), then the lab state (unless not `read`); callbacks run in the UI."""
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
        with self._cv:
            self._calls.append(EngineCall(label, fn, on_done, on_error, quiet, self.clock_now, read=read))
            self._cv.notify_all()
        self._keys_quiet.set()  # a key that asks the engine for something never holds it

    def _clock_settings(self) -> None:
        """Tell the engine thread whether the clock runs, and how fast."""
        with self._cv:
            self._clock_on = bool(self.clock_running and not self.observer and self.state.loaded)
            self._engine_speed = self.speed
            self._engine_waiting = False  # not idle until it has looked again
            self._cv.notify_all()

    def wake_engine(self) -> None:
        """Let the engine thread look again (tests call it after moving their manual wall clock)."""
        with self._cv:
            self._engine_waiting = False  # not idle until it has looked again
            self._cv.notify_all()

    @work(thread=True, group="engine", exit_on_error=False, description="the engine thread")
    def _engine_loop(self) -> None:
        """The one thread that calls the lab: asked-for calls in order, else the clock's slices,
        else (paused, an observer) a look at the lab every `poll` seconds."""
        worker = get_current_worker()
        pace = Pace()
        last_poll = self.wall.monotonic()
        while True:
            call: EngineCall | None = None
            step = 0
            with self._cv:
                while True:
                    if self._stopping or worker.is_cancelled:
                        return
                    now = self.wall.monotonic()
                    if self._calls:
                        call = self._calls.popleft()
                        break
                    timeout = FRAME
                    if self._clock_on:
                        step, timeout = pace.due(now, self._engine_speed)
                        if step:
                            break
                    else:
                        pace.stop()
                        if self.poll:
                            if now - last_poll >= self.poll:
                                last_poll = now
                                break
                            timeout = self.poll - (now - last_poll)
                    if not self._engine_waiting:
                        self._engine_waiting = True
                        self.post_message(EngineIdle())
                    self.wall.wait(self._cv, min(max(timeout, 0.001), FRAME))
                self._engine_waiting = False
            self._engine_step(call, step, pace)

    def _engine_step(self, call: EngineCall | None, step: int, pace: Pace) -> None:
        """In the engine thread: one call, one clock slice or one look, then the lab state. A
        slice runs in pieces; the screen is told after each, and a call or a pause waiting stops
        the slice there (what it did not run is owed again)."""
        result: Any = None
        err: BaseException | None = None
        with self._lock:
            if call is not None and call.fn is not None:
                try:
                    call.applied = self.lab.now
                    result = call.fn(self.lab)
                except Exception as e:  # LabError: refused; anything else: shown, never a traceback
                    err = e
            elif step:
                done = 0
                try:
                    while done < step:
                        piece = min(PIECE, step - done)
                        self.lab.run(piece)
                        done += piece
                        if done < step:
                            if self._slice_interrupted():
                                break  # a key asked for something, or paused: now, not at the slice's end
                            self._publish_clock(pace)
                except Exception as e:
                    err = e
                pace.ran(self.wall.monotonic(), step, done)
            if call is None and err is None and self._read_owed() and not self._slice_interrupted():
                self._publish_clock(pace)  # the clock moves on the screen; the lab is read a little later
            elif call is not None and not call.read:
                self._post(EngineDone(0, call, result, err, None, None, False))
            else:
                self._publish(call, result, err, pace, full=call is not None)

    def _read_owed(self) -> bool:
        """A clock slice skips its read of the lab while less than READ_GAP times the last read's
        cost has passed since it: on a big lab (a 1,000-VM read takes a good part of a second)
        the engine thread spends its time on lab time, not on reading it. The cost is measured
        on the app's wall clock (a test's manual one: reads cost nothing, none is skipped)."""
        return self.wall.monotonic() - self._read_done_at < READ_GAP * self._read_cost

    def _publish(self, call: EngineCall | None, result: Any, err: BaseException | None, pace: Pace,
                 full: bool = False) -> None:
        """In the engine thread, holding the lock: read the lab and tell the UI. A full read after
        a command and once a second (on a big lab: once five times its cost has passed); in
        between, everything but the disks' allocation (see state.refreshed_status). Recovery
        points and what is allowed are read again only for the VMs that changed (see `changes`),
        every VM's every WHOLE_READ seconds."""
        state: LabState | None = None
        holder_gone = False
        try:
            now = self.wall.monotonic()
            # a full read (disks' allocation too) once FULL_READ has passed, or five times what
            # the last one cost (a big lab), and after a command
            full = full or self._full_read is None or now - self._full_read_at >= max(FULL_READ, 5 * self._full_cost)
            # only what changed since the last read (engine.changes), and everything now and then:
            # the judgements that lab time alone changes; an observer cannot see another process's changes
            changed = self.changes(self.lab) if self.changes else None
            whole = changed is None or self.observer or now - self._whole_read_at >= WHOLE_READ
            state = collect(self.lab, None if full else self._full_read, self._last_read, None if whole else changed)
            self._last_read = state
            self._read_done_at = self.wall.monotonic()
            self._read_cost = self._read_done_at - now
            if whole:
                self._whole_read_at = now
            if full:
                self._full_read, self._full_read_at, self._full_cost = state, now, self._read_cost
        except Exception as e:
            if err is None:
                err = e
        if self.observer and not self.observer_why.startswith("opened with"):
            holder_gone = clock_holder_gone(self.lab)
        self._post(EngineDone(0, call, result, err, state, pace.rate(self.wall.monotonic()), holder_gone))

    def _post(self, msg: EngineDone) -> None:
        """In the engine thread: number the message and post it to the UI."""
        with self._cv:
            self._posted += 1
            msg.seq = self._posted
        if not self.post_message(msg):
            with self._cv:
                self._posted -= 1  # the app is closing: nobody will handle it

    def _publish_clock(self, pace: Pace) -> None:
        """In the engine thread, holding the lock: tell the UI the lab time only (no read)."""
        self._post(EngineDone(0, None, None, None, None, pace.rate(self.wall.monotonic()), self.holder_gone,
                              now=self.lab.now))

    def _slice_interrupted(self) -> bool:
        with self._cv:
            return bool(self._calls) or not self._clock_on or self._stopping

    def on_engine_done(self, msg: EngineDone) -> None:
        self._handled += 1
        call = msg.call
        if msg.state is not None and msg.seq > self._applied_seq:
            self._applied_seq = msg.seq
            self.rate = msg.rate if call is None else self.rate
            self.apply_state(msg.state)
        elif msg.now is not None and msg.seq > self._applied_seq:
            self._applied_seq = msg.seq
            self.rate = msg.rate
            self.clock_now = msg.now
        self._observe_holder(msg.holder_gone)
        if call is None:  # a clock slice or a look
            if msg.err is not None:
                self.clock_running = False
                self._clock_settings()
                self.report_refusal(msg.err, "lab clock paused")
        else:
            self._inflight -= 1
            self.last_applied = call
            if not call.quiet and self.busy_action == call.label:
                self.busy_action = ""
            if msg.err is not None:
                if call.on_error is not None:
                    call.on_error(msg.err)
                else:
                    self.report_refusal(msg.err, call.label)
            else:
                self._name_started_jobs(msg.result)
                if call.on_done is not None:
                    call.on_done(msg.result)
        self._update_bars()
        self._key_check()
        self._wake_waiters()

    def on_engine_idle(self, _msg: EngineIdle) -> None:
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        if self._idle is not None:
            self._idle.set()

    def engine_idle(self) -> bool:
        """Nothing asked of the engine thread is left undone or unshown."""
        with self._cv:
            return not self._calls and self._engine_waiting and self._posted == self._handled

    async def wait_engine_idle(self) -> None:
        """Wait until engine_idle() (tests: what every key asked for has happened and shows)."""
        while not (self.engine_idle() and self.keys_idle()):
            self._idle.clear()
            await self._idle.wait()

    def _name_started_jobs(self, result: Any) -> None:
        """A command started jobs: Jobs opens on the newest of them."""
        ids = job_ids_of(result)
        if ids:
            self.panel("jobs").name_job(max(ids))

    def report_refusal(self, err: BaseException, label: str = "") -> None:
        if isinstance(err, LabError):
            msg = err.message + (f"\n{err.hint}" if err.hint else "")
            self.last_refusal = msg
            self.notify(msg, title=label or "not done", severity="warning", timeout=8, markup=False)
        else:
            msg = f"{type(err).__name__}: {err}"
            self.last_error = msg
            self.log.error(msg)
            self.notify(msg, title=f"{label}: unexpected error", severity="error", timeout=10, markup=False)

    def refresh_state(self) -> None:
        self.engine_call("refresh", None, mutates=False, quiet=True)

    def apply_state(self, state: LabState) -> None:
        self.state = state
        self.clock_now = state.now
        # Only the panel on the screen follows the lab; the others catch up when shown (a hidden
        # 1,000-row table costs as much to diff as a shown one).
        for p in self.panels():
            if p.id == self._current:
                p.update_state(state)
                self._stale.discard(p.id)
            else:
                self._stale.add(p.id)
        self._catch_up()  # (a panel just shown has caught up now: what is left is its opened())
        for screen in self.screen_stack:
            follow = getattr(screen, "update_state", None)  # a screen that shows the lab follows it
            if follow is not None:
                follow(state)
        self._update_bars()
        # (a dict compares in C: no sorting of 20,000 judgements on every refresh)
        sig = (state.allowed, [(j["id"], j.get("state")) for j in state.jobs])
        if sig != self._bindings_sig:
            self._bindings_sig = sig
            self.refresh_bindings()
        if not self._clock_on and self.clock_running:
            self._clock_settings()  # the first state: the clock may start
        if state.judged and self._gc_threshold is None:
            self._take_over_gc()

    def _take_over_gc(self) -> None:
        """The collector's full passes, on a 1,000-VM lab 30-55 ms each, came in the middle of keys
        (the slowest keys): everything made so far (the widgets, the code, the first read of the
        lab) lives as long as the app, so full passes leave it alone (gc.freeze); and the app
        runs them itself, between keys (_collect_garbage), instead of the collector whenever."""
        self._gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(self._gc_threshold[0], self._gc_threshold[1], 2**30)
        self.set_interval(GC_EVERY, self._collect_garbage)

    def _collect_garbage(self) -> None:
        if self.keys_idle():
            gc.collect()

    # ---- keys: one at a time -----------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """A key from the terminal waits until the keys before it have taken effect."""
        if isinstance(event, events.Key) and not self.screen_stack:
            return  # closing: no screen takes keys any more
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._key_busy or self._key_backlog:
                self._key_backlog.append(event)
                return
            await self._handle_key(event)
            return
        await super().on_event(event)

    async def _handle_key(self, event: events.Key) -> None:
        self._catch_up()  # a key acts on the panel as it is now
        self._key_busy = True
        self._key_token += 1
        self._key_screen = self.screen
        token = self._key_token
        await super().on_event(event)
        self.set_timer(2.0, partial(self._key_watchdog, token))
        self._follow_key(token, passes=2)

    def _follow_key(self, token: int, passes: int) -> None:
        """Follow the key from the focused widget up to the app, hop by hop (each widget's queue
        has handled what came before), twice: once for the key, once for what handling it asked
        of the same widgets (a submitted field, a pressed button)."""
        if not self.screen_stack:  # closing
            return
        focused = self.focused or self.screen
        path = [n for n in focused.ancestors_with_self]
        self._key_hop(token, path, passes)

    def _key_hop(self, token: int, path: list, passes: int) -> None:
        if token != self._key_token:
            return
        while path:
            node, path = path[0], path[1:]
            if node.call_later(self._key_hop, token, path, passes):
                return
        if passes > 1:
            self._follow_key(token, passes - 1)
        else:
            self._key_check(token)

    def _key_check(self, token: int | None = None) -> None:
        """The key has gone through: let the next one in once a screen it opened or closed is
        up, and a dialog it confirmed has the engine's answer."""
        if not self._key_busy or (token is not None and token != self._key_token) or not self.screen_stack:
            return
        if self._key_screen is not self.screen:
            self._key_screen = self.screen
            token = self._key_token
            if self.screen.call_later(self._key_check, token):
                return
        if getattr(self.screen, "pending", False):
            return  # on_engine_done looks again
        self._key_busy = False
        self._next_key()

    def _key_watchdog(self, token: int) -> None:
        """Never let the keyboard stick: a key still following its path after 2 s lets the next in."""
        if not self.screen_stack:
            return
        if self._key_busy and token == self._key_token and not getattr(self.screen, "pending", False):
            self._key_busy = False
            self._next_key()

    def _next_key(self) -> None:
        if self._key_backlog and not self._key_busy:
            self._key_busy = True
            self.call_later(self._release_key)
        else:
            self._wake_waiters()

    async def _release_key(self) -> None:
        self._key_busy = False
        if self._key_backlog and self.screen_stack:
            await self._handle_key(self._key_backlog.popleft())

    def keys_idle(self) -> bool:
        return not self._key_busy and not self._key_backlog

    @property
    def _key_busy(self) -> bool:
        return self._key_in_flight

    @_key_busy.setter
    def _key_busy(self, busy: bool) -> None:
        self._key_in_flight = busy
        if busy:
            self._keys_quiet.clear()
        else:
            self._keys_quiet.set()

    def _hold_for_key(self) -> None:
        """In the engine thread, between VMs of a slice (Lab.between_vms): while a key is handled,
        wait (at most HOLD s: a key that waits on the engine has asked it for a call, which lets
        it go at once)."""
        if not self._keys_quiet.is_set():
            self._keys_quiet.wait(HOLD)

    # ---- the lab clock -----------------------------------------------------------------------

    def observer_reason(self) -> str:
        how = ("open it without --observer to act" if self.observer_why.startswith("opened with")
               else "act there, or close it and open this lab again")
        return f"observer view ({self.observer_why}): this srlab only watches the lab; {how}"

    def clock_reason(self) -> str | None:
        if self.observer:
            return f"observer view: {self.observer_why}; lab time is driven elsewhere"
        return None

    def can_take_over(self) -> bool:
        return self.observer and not self.observer_why.startswith("opened with")

    def _observe_holder(self, gone: bool) -> None:
        """Observer: say once when the srlab that drove the clock has gone, and offer to take over."""
        if gone == self.holder_gone:
            return
        self.holder_gone = gone
        if gone and self.can_take_over() and not self._told_holder_gone:
            self._told_holder_gone = True
            self.notify("The srlab that drove this lab's clock has gone. Press p to drive it from here "
                        "(take over).", title="clock free", severity="warning", timeout=15)
        self.refresh_bindings()

    def action_take_over(self) -> None:
        def done(got: bool) -> None:
            if not got:
                self.notify(f"Another srlab took the clock first (pid {self.lab.clock_holder()}).",
                            title="still observer", severity="warning")
                return
            self.observer = False
            self.observer_why = ""
            self.holder_gone = False
            self.clock_running = False
            self._clock_settings()
            self.notify("This srlab drives the lab's clock now; it is paused: p runs it.", title="clock taken over")
            self._update_bars()
            self.refresh_bindings()

        self.engine_call("taking over the clock", lambda lab: lab.acquire_clock(), on_done=done, mutates=False)

    def action_pause(self) -> None:
        self.clock_running = False
        self._clock_settings()
        self._update_bars()
        self.refresh_bindings()

    def action_resume(self) -> None:
        self.clock_running = True
        self.rate = None
        self._clock_settings()
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
        self.rate = None
        self._clock_settings()
        self._update_bars()

    def action_set_speed(self, speed: int) -> None:
        self.set_speed(int(speed))

    def action_advance(self, seconds: int) -> None:
        """t / T: the clock on the screen shows where lab time is going at once (⏩); the engine
        runs it in one lab.run, at its own speed, and the screen shows the lab when it is done."""
        seconds = int(seconds)
        label = f"advancing {fmt_duration(seconds)}"
        self.advancing_to = max(self.advancing_to or 0, self.clock_now) + seconds
        self._advances += 1

        def finished() -> None:
            self._advances -= 1
            if not self._advances:
                self.advancing_to = None

        def failed(err: BaseException) -> None:
            finished()
            self.report_refusal(err, label)

        self.engine_call(label, lambda lab: lab.run(seconds), on_done=lambda r: finished(), on_error=failed)
        self._update_bars()

    def action_run_for(self) -> None:
        self.show_dialog(RunForForm())

    def prove(self, vm: str, what: str, point: Any, out_dir: str | None = None) -> None:
        """Verify (or export) `vm`'s disks at a recovery point, as srlab verify / export do; the
        result goes to `proofs` and the detail panes show it."""
        point = "latest" if point in (None, "") else point

        def op(lab: Lab) -> dict:
            return dict(lab.verify(vm, point) if what == "verify" else lab.export(vm, point, out_dir), what=what)

        def done(r: dict) -> None:
            self.proofs[vm] = r
            if what == "verify":
                self.notify(f"{vm} at point {r.get('point')}: {'identical' if r.get('identical') else 'NOT identical'}",
                            title="verify", severity="information" if r.get("identical") else "error",
                            markup=False)
            else:
                self.notify(f"{vm} at point {r.get('point')}: {len(r.get('files', []))} file(s) written to "
                            f"{out_dir}", title="export", markup=False)
            self.apply_state(self.state)

        label = f"verifying {vm}" if what == "verify" else f"exporting {vm}"
        self.engine_call(label, op, on_done=done, mutates=False)

    # ---- panels and navigation ---------------------------------------------------------------

    def action_show_panel(self, panel_id: str) -> None:
        while len(self.screen_stack) > 1 and isinstance(self.screen, VmDetailScreen):
            self.pop_screen()
        self._close_lines()
        if panel_id != self._current:
            self._history.append(self._current)
            self._history = self._history[-20:]
        self._show(panel_id, opened=True)

    def _show(self, panel_id: str, opened: bool) -> None:
        """Show a panel; `opened`: its key was pressed (Panel.opened)."""
        self._catching_up = None  # (the panel shown before is hidden again: it stays behind)
        self._current = panel_id
        self.query_one("#panels", ContentSwitcher).current = panel_id
        if panel_id in self._stale:
            self._catching_up = (panel_id, opened)
            self.call_after_refresh(self._catch_up)
        elif opened:
            self.panel().opened()
        self.panel().focus_default()
        self._update_bars()
        self.refresh_bindings()

    def _catch_up(self) -> None:
        """The panel just shown missed lab states while hidden: show the latest. On a 1,000-VM
        lab that was most of a panel switch's time, so the panel is painted first as it was when
        hidden, and catches up right after the paint, or before the next key or lab state if
        they come first (SrlabApp._handle_key, apply_state)."""
        due, self._catching_up = self._catching_up, None
        if due is None or due[0] != self._current:
            return
        if self._current in self._stale:
            self._stale.discard(self._current)
            self.panel().update_state(self.state)
        if due[1]:
            self.panel().opened()
        self.refresh_bindings()

    def action_back(self) -> None:
        if self._close_lines(clear=True):
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
            self._show(self._history.pop(), opened=False)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_text(self.panel()), f"Keys: {self.panel().TITLE}"))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme != LIGHT else DARK

    # ---- the / filter and the : command line ---------------------------------------------------

    def action_filter(self) -> None:
        table = self.panel().filter_table()
        if table is None:
            self.notify("Nothing to filter on this panel.", timeout=3)
            return
        self._close_lines()
        self._filter_table = table
        box = self.query_one("#filter-input", FilterInput)
        box.value = table.filter_text
        box.add_class("-active")
        # Focus now, not after the queued keys: over SSH "/SC01" can arrive in one packet, and
        # its "1" must be typed into the filter, not switch to the dashboard.
        self.screen.set_focus(box)

    def action_command_line(self) -> None:
        self._close_lines()
        box = self.query_one("#command-input", CommandInput)
        box.value = ""
        box.add_class("-active")
        self.screen.set_focus(box)

    def action_line_enter(self) -> None:
        """enter in the filter keeps it; in the command line runs the command. Either way the
        line closes at once, so the keys typed after enter act on the panel."""
        focused = self.focused
        if isinstance(focused, CommandInput):
            line = focused.value.strip()
            focused.remember(line)
            self._close_lines()
            if line:
                self.run_command(line)
        else:
            self._close_lines()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter-input" and self._filter_table is not None:
            self._filter_table.set_filter(event.value)
            self.panel().table_changed()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in ("filter-input", "command-input"):  # (enter is taken by action_line_enter)
            self._close_lines()

    def _close_lines(self, clear: bool = False) -> bool:
        """Close the filter (clearing it with `clear`) or the command line; True if one was open."""
        closed = False
        cmd = self.query_one("#command-input", CommandInput)
        if cmd.has_class("-active"):
            cmd.remove_class("-active")
            closed = True
        box = self.query_one("#filter-input", FilterInput)
        table = self._filter_table
        if box.has_class("-active"):
            if clear and table is not None:
                table.set_filter("")
                self.panel().table_changed()
            box.remove_class("-active")
            closed = True
        self._filter_table = None
        if closed:
            self.panel().focus_default()  # at once, for the keys already queued after enter
        return closed

    def run_command(self, line: str) -> None:
        """Run one of srlab's commands on this lab, parsed by the command line's own code, in
        the engine thread; what it prints shows in a window, a refusal as the CLI words it."""
        words = line.split()
        if words and words[0] == "srlab":
            line = line.split(None, 1)[1] if len(words) > 1 else ""
        if self.commands is None:
            self.notify("the command line is not available in this app", severity="warning")
            return

        def done(r: tuple[int, str, str]) -> None:
            code, out, err = r
            self.last_command = (line, code, out, err)
            if code:
                self.last_refusal = err.strip() or out.strip()
            self.show_dialog(CommandOutput(line, code, out, err))

        runner = self.commands
        mutates = not (self.observer and is_read_only_command(line))
        self.engine_call(f"srlab {line}", lambda lab: runner(lab, line), on_done=done, mutates=mutates)

    # ---- actions: enabled, disabled with a reason --------------------------------------------

    def _typing_or_in_dialog(self) -> bool:
        """Keys belong to the dialog on top, or to the field being typed into."""
        return isinstance(self.screen, ModalScreen) or isinstance(self.focused, Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "line_enter":
            return isinstance(self.focused, (FilterInput, CommandInput))
        if action in _GLOBAL_KEY_ACTIONS and self._typing_or_in_dialog():
            return False
        free = self.can_take_over() and self.holder_gone
        if action == "take_over":
            return free
        if action == "pause":
            return False if free else (True if self.clock_running else False) if not self.observer else None
        if action == "resume":
            return False if free else (False if self.clock_running else True) if not self.observer else None
        if action in ("advance", "run_for", "faster", "slower", "set_speed"):
            return None if self.clock_reason() else True
        if action in ("filter", "command_line") and len(self.screen_stack) > 1:
            return False  # the / filter works on the panels' tables, not on a drill-down screen
        return True

    def disabled_reason(self, action: str) -> str | None:
        if action in ("pause", "resume", "advance", "run_for", "faster", "slower", "set_speed"):
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
        # (a panel's action this lab never has a subject for is not in the key bar: False, but it says why too)
        state = target.check_action(name, params) if target is not None else True
        if state is None or (state is False and isinstance(target, Panel)):
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
        if isinstance(request, VmDetails):
            self.push_screen(self._vm_detail(request.vm), callback)
            return
        self.push_screen(plan_dialog_for(request, self.state) or dialog_for(request, self.state), callback)

    def _vm_detail(self, vm: str) -> VmDetailScreen:
        """The VM detail screen: one, kept (installed) and shown again on the next VM. Building
        its widgets and their styles was most of enter's time on a 1,000-VM lab."""
        screen = self._vm_screen
        if screen is None:
            screen = self._vm_screen = VmDetailScreen(vm)
            self.install_screen(screen, "vm-detail")
        elif screen in self.screen_stack:  # (no key opens a VM's details from its details)
            return VmDetailScreen(vm)
        else:
            screen.show(vm)
        return screen

    async def _palette_run(self, panel_id: str, action_id: str) -> None:
        if panel_id != self._current:
            self.action_show_panel(panel_id)
            self._catch_up()
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
            (f"{PANELS[0].KEY}-{PANELS[-1].KEY}", "panels: " + ", ".join(f"{p.KEY} {p.TITLE}" for p in PANELS)),
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

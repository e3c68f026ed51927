"""Faults (key 7): break things on purpose (seed 000's retry logic and resync, seed 001's disaster)
and put them right. The kinds the lab can inject, what each touches, its error code and whether
replication retries it; below, the faults in effect: target, since, until, the VMs they touch."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..host import Confirm, FaultForm
from ..state import (LabState, fault_subject, fault_target, fault_target_name as target_name, fmt_day_time,
                     fmt_duration, fmt_time, kind_subject)
from ..widgets import Column, LabTable, show_text
from .base import Panel, PanelAction

KIND_COLUMNS = [
    Column("kind", "Kind", 21),
    Column("touches", "Touches", 7),
    Column("code", "Error code", 22),
    Column("retried", "Retried", 7),
    Column("effect", "In effect", 0),
]
KIND_COLUMNS_WIDE = [
    Column("kind", "Kind", 21),
    Column("touches", "Touches", 7),
    Column("code", "Error code", 22),
    Column("retried", "Retried", 7),
    Column("effect", "In effect", 16, grow=1),
    Column("about", "What it does", 30, grow=3),
]
FAULT_COLUMNS = [
    Column("kind", "Fault", 18),
    Column("target", "Target", 12, grow=1),
    Column("since", "Since", 8),
    Column("until", "Until", 8),
    Column("touches", "Touches", 20, grow=2),
]
FAULT_COLUMNS_WIDE = [
    Column("kind", "Fault", 21),
    Column("target", "Target", 24, grow=1),
    Column("since", "Since", 14),
    Column("until", "Until", 14),
    Column("touches", "Touches", 20, grow=2),
]
WIDE_MIN = 110
MOST_FAULT_ROWS = 5  # the faults table shows up to this many rows before it scrolls


class Faults(Panel):
    PANEL_ID = "faults"
    TITLE = "Faults"
    KEY = "7"
    ACTIONS = [
        PanelAction("inject", "i", "Inject", "Inject a fault",
                    "inject the fault kind under the cursor: its target (or everything it can touch), how long "
                    "(until cleared, or 90s, 15m, 3h) and, for link-flaky and link-slow, how much"),
        PanelAction("clear", "c", "Clear", "Clear a fault",
                    "clear the fault under the cursor (on a kind: every fault of that kind); replication retries "
                    "at its next attempt"),
        PanelAction("clear_all", "C,shift+c", "Clear all", "Clear every fault",
                    "clear every fault in effect", key_display="C"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.compact = True

    def compose(self) -> ComposeResult:
        yield LabTable(KIND_COLUMNS, id="fault-kinds", title="Fault kinds")
        yield LabTable(FAULT_COLUMNS, id="faults-table", title="Faults in effect")
        yield Static("", id="fault-detail")

    def on_mount(self) -> None:
        self.query_one("#fault-detail").border_title = "Selected"

    @property
    def kinds_table(self) -> LabTable:
        return self.query_one("#fault-kinds", LabTable)

    @property
    def faults_table(self) -> LabTable:
        return self.query_one("#faults-table", LabTable)

    def on_resize(self) -> None:
        compact = self.app.size.width < WIDE_MIN
        if compact != self.compact:
            self.compact = compact
            self.kinds_table.set_columns(KIND_COLUMNS if compact else KIND_COLUMNS_WIDE)
            self.faults_table.set_columns(FAULT_COLUMNS if compact else FAULT_COLUMNS_WIDE)
            self.update_state(self.state)
        self.fit()

    def fit(self) -> None:
        """The faults in effect as tall as their rows (up to MOST_FAULT_ROWS); the kinds the rest."""
        rows = max(1, len(self.faults_table.row_keys))
        height = min(rows, MOST_FAULT_ROWS) + 3
        if self._fitted.get(0) != height:
            self._fitted[0] = height
            self.faults_table.styles.height = height

    # ---- rows --------------------------------------------------------------------------------

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        in_effect: dict[str, list[dict]] = {}
        for f in state.faults:
            in_effect.setdefault(f["kind"], []).append(f)
        rows = []
        for k in state.fault_kinds:
            mine = in_effect.get(k["kind"], [])
            why = state.reason("fault_inject", k["kind"])
            effect = Text(", ".join(target_name(f) for f in mine), style=f"bold {colors['warning']}") if mine else (
                Text("damages a file" if k.get("damage") else "", style="dim"))
            cells = [
                Text(k["kind"], style="bold" if mine else ("dim" if why else "")),
                Text(str(k.get("touches", ""))),
                Text(str(k.get("code") or "-"), style="" if k.get("code") else "dim"),
                Text("yes" if k.get("recoverable") else "never",
                     style=colors["ok"] if k.get("recoverable") else colors["error"]),
                effect,
                Text(str(k.get("about", ""))),
            ]
            if self.compact:
                del cells[5]
            rows.append((f"kind:{k['kind']}", tuple(cells)))
        if not rows:
            rows.append(("none", (Text("no fault kinds", style="dim"),)))
        self.kinds_table.set_rows(rows)

        frows = []
        for f in state.faults:
            until = f.get("until")
            fmt = (lambda t: fmt_time(t, True)) if self.compact else fmt_day_time
            frows.append((fault_subject(f), (
                Text(str(f["kind"]), style=f"bold {colors['warning']}"),
                Text(target_name(f)),
                Text(fmt(f.get("since"))),
                Text(fmt(until) if until is not None else "-", style="" if until is not None else "dim"),
                Text(", ".join(f.get("touches") or []) or "no VM now", style="" if f.get("touches") else "dim"),
            )))
        if not frows:
            frows.append(("none", (Text("none", style="dim"),)))
        self.faults_table.set_rows(frows)
        self.faults_table.base_title = f"Faults in effect ({len(state.faults)})" if state.faults else \
            "Faults in effect"
        self.faults_table.set_filter(self.faults_table.filter_text)  # (shows the new title)
        self.fit()
        self.show_detail()

    # ---- what is selected --------------------------------------------------------------------

    def cursor_kind(self) -> dict | None:
        key = self.kinds_table.cursor_key
        if not key or not key.startswith("kind:"):
            return None
        return next((k for k in self.state.fault_kinds if k["kind"] == key[5:]), None)

    def cursor_fault(self) -> dict | None:
        key = self.faults_table.cursor_key
        return next((f for f in self.state.faults if fault_subject(f) == key), None)

    def on_faults_table(self) -> bool:
        return self.app.focused is self.faults_table

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def show_detail(self) -> None:
        pane = self.query_one("#fault-detail", Static)
        colors = self.host.status_colors
        t = Text()
        f = self.cursor_fault() if self.on_faults_table() else None
        if f is not None:
            pane.border_title = f"Fault {f['kind']}"
            t.append(Text(f"{f['kind']} on {target_name(f)}", style="bold"))
            t.append(f" since {fmt_time(f.get('since'))}")
            until = f.get("until")
            if until is not None:
                t.append(f", until {fmt_time(until)}")
                if until >= self.state.now:
                    t.append(f" ({fmt_duration(until - self.state.now)} left)")
            else:
                t.append(", until cleared")
            t.append("\n")
            code = f.get("code") or "no error code"
            t.append(Text(f"{code} · {'recoverable: retried' if f.get('recoverable') else 'never retried'}"))
            if f.get("amount") is not None:
                t.append(Text(f" · amount {f['amount']:g}"))
            t.append(" · touches ")
            t.append(Text(", ".join(f.get("touches") or []) or "no VM now"))
            t.append("\n")
            t.append(Text(str(f.get("about", "")), style="dim"))
        else:
            k = self.cursor_kind()
            if k is None:
                pane.border_title = "Selected"
                t.append("no fault kind", style="dim")
            else:
                pane.border_title = f"Kind {k['kind']}"
                t.append(Text(str(k.get("about", ""))))
                t.append("\n")
                t.append(Text(f"touches a {k.get('touches', '')} · "))
                if k.get("code"):
                    t.append(Text(f"{k['code']} · "))
                if k.get("damage"):
                    t.append("damages a file now; a resync repairs the item")
                elif k.get("recoverable"):
                    t.append("retried after 1, 2, 4, 8, 10 min, then every 30 min")
                else:
                    t.append("never retried: Critical until cleared and resynchronized")
                why = self.disabled_reason("inject")
                if why:
                    t.append("\n")
                    t.append("not now: ", style=colors["warning"])
                    t.append(Text(why))
        show_text(pane, t)

    # ---- actions -----------------------------------------------------------------------------

    def reason(self, action_id: str) -> str | None:
        if action_id == "clear" and self.clear_subject()[0] is None:
            return "move the cursor to a fault in effect, or to a kind"
        if action_id == "inject":
            k = self.cursor_kind()
            return "move the cursor to a fault kind" if k is None else self.state.reason("fault_inject", k["kind"])
        if action_id == "clear":
            return self.state.reason("fault_clear", self.clear_subject()[0])
        if action_id == "clear_all":
            return self.state.reason("fault_clear", None)
        return None

    def clear_subject(self) -> tuple[str | None, list[dict]]:
        """What `c` clears now (the key it is judged by, the faults): the fault under the cursor
        on the faults table; on a kind, every fault of that kind."""
        if self.on_faults_table():
            f = self.cursor_fault()
            return (fault_subject(f), [f]) if f is not None else (None, [])
        k = self.cursor_kind()
        if k is None:
            return None, []
        return kind_subject(k["kind"]), [f for f in self.state.faults if f["kind"] == k["kind"]]

    def action_inject(self) -> None:
        k = self.cursor_kind()
        if k is not None:
            self.show_dialog(FaultForm(k["kind"]))

    def action_clear(self) -> None:
        _subject, chosen = self.clear_subject()
        if not chosen:
            return
        if self.on_faults_table() or len(chosen) == 1:
            f = chosen[0]
            kind, target = f["kind"], fault_target(f)
            lines = [Text.assemble("Clear fault ", (kind, "bold"), " on ", (target_name(f), "bold"), "."),
                     Text("What it stopped goes on: replication retries at its next attempt; an unrecoverable "
                          "error's item stays Critical until it is resynchronized.")]
            self.show_dialog(Confirm("Clear fault", lines, lambda lab: lab.fault_clear(kind, target), ok_label="Clear"))
            return
        kind = chosen[0]["kind"]
        lines = [Text.assemble("Clear every ", (kind, "bold"), " fault: ",
                               Text(", ".join(target_name(f) for f in chosen)), ".")]
        self.show_dialog(Confirm("Clear faults", lines, lambda lab: lab.fault_clear(kind), ok_label="Clear"))

    def action_clear_all(self) -> None:
        faults = self.state.faults
        lines = [Text.assemble("Clear every fault in effect: ",
                               Text(", ".join(f"{f['kind']} on {target_name(f)}" for f in faults)), "."),
                 Text("Replication retries at each item's next attempt.")]
        self.show_dialog(Confirm("Clear all faults", lines, lambda lab: lab.fault_clear(), ok_label="Clear all"))

    def filter_table(self) -> LabTable | None:
        return self.faults_table if self.on_faults_table() else self.kinds_table

    def opened(self) -> None:
        self.show_detail()



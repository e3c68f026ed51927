"""Events (key 6): what happened in the lab, newest first: each with its error code, and for the
selected one the full message and the recommended action."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..state import LabState, fmt_day_time, fmt_time
from ..widgets import Column, LabTable, show_text
from .base import Panel, PanelAction

COLUMNS = [
    Column("time", "Time", 14),
    Column("level", "Level", 5),
    Column("subject", "Subject", 12),
    Column("code", "Code", 15),
    Column("message", "Message", 0),
]
COLUMNS_WIDE = [
    Column("time", "Time", 14),
    Column("level", "Level", 7),
    Column("subject", "Subject", 16, grow=1),
    Column("code", "Code", 22),
    Column("message", "Message", 30, grow=4),
]
WIDE_MIN = 110


class Events(Panel):
    PANEL_ID = "events"
    TITLE = "Events"
    KEY = "6"
    ACTIONS = [
        PanelAction("same_subject", "s", "Same subject",
                    "Events of the same subject",
                    "filter the events to the selected event's subject (a VM, a fault's target); esc shows all "
                    "again", mutates=False),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.compact = True

    def compose(self) -> ComposeResult:
        yield LabTable(COLUMNS, id="events-table", title="Events (newest first)")
        yield Static("", id="event-detail")

    @property
    def table(self) -> LabTable:
        return self.query_one("#events-table", LabTable)

    def on_resize(self) -> None:
        compact = self.app.size.width < WIDE_MIN
        if compact != self.compact:
            self.compact = compact
            self.table.set_columns(COLUMNS if compact else COLUMNS_WIDE)
            self.update_state(self.state)

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        rows = []
        for e in state.events:
            level = str(e.get("level", ""))
            style = {"warning": colors["warning"], "error": f"bold {colors['error']}"}.get(level, "dim")
            code = str(e.get("code") or "")
            rows.append((f"event:{e['id']}", (
                Text(fmt_day_time(e.get("time"))),
                Text("warn" if self.compact and level == "warning" else level, style=style),
                Text(str(e.get("subject", "")), no_wrap=True, overflow="ellipsis"),
                Text(code, style=style if code else "", no_wrap=True, overflow="ellipsis"),
                Text(str(e.get("message", "")), no_wrap=True, overflow="ellipsis"),
            )))
        self.table.set_rows(rows)
        self.show_detail()

    def opened(self) -> None:
        table = self.table
        if table.row_count:
            table.move_cursor(row=0, animate=False)  # the newest
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def selected(self) -> dict | None:
        key = self.table.cursor_key
        return next((e for e in self.state.events if f"event:{e['id']}" == key), None)

    def show_detail(self) -> None:
        e = self.selected()
        text = Text()
        if e is not None:
            text = Text.assemble((fmt_time(e.get("time")), "bold"), "  ", Text(str(e.get("subject", "")), style="bold"))
            if e.get("code"):
                text.append("  ")
                text.append(Text(str(e["code"]), style=f"bold {self.host.status_colors['warning']}"))
            text.append("\n")
            text.append(Text(str(e.get("message", ""))))
            if e.get("action"):
                text.append("\n")
                text.append("Recommended action: ", style="bold")
                text.append(Text(str(e["action"])))
        show_text(self.query_one("#event-detail", Static), text)

    # ---- actions -----------------------------------------------------------------------------

    def reason(self, action_id: str) -> str | None:
        if action_id == "same_subject":
            e = self.selected()
            return None if e is not None and e.get("subject") else "move the cursor to an event"
        return None

    def action_same_subject(self) -> None:
        e = self.selected()
        if e is None or not e.get("subject"):
            return
        self.table.set_filter(str(e["subject"]))
        self.table_changed()

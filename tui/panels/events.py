"""Events (key 6): what happened in the lab, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..state import LabState, fmt_day_time, fmt_time
from ..widgets import Column, LabTable, show_text
from .base import Panel

COLUMNS = [
    Column("time", "Time", 14),
    Column("level", "Level", 7),
    Column("subject", "Subject", 16),
    Column("message", "Message", 0),
]


class Events(Panel):
    PANEL_ID = "events"
    TITLE = "Events"
    KEY = "6"
    ACTIONS = []

    def compose(self) -> ComposeResult:
        yield LabTable(COLUMNS, id="events-table", title="Events (newest first)")
        yield Static("", id="event-detail")

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        rows = []
        for e in state.events:
            level = str(e.get("level", ""))
            style = {"warning": colors["warning"], "error": f"bold {colors['error']}"}.get(level, "dim")
            rows.append((f"event:{e['id']}", (
                Text(fmt_day_time(e.get("time"))),
                Text(level, style=style),
                Text(str(e.get("subject", "")), no_wrap=True, overflow="ellipsis"),
                Text(str(e.get("message", "")), no_wrap=True, overflow="ellipsis"),
            )))
        self.query_one(LabTable).set_rows(rows)
        self.show_detail()

    def opened(self) -> None:
        table = self.query_one(LabTable)
        if table.row_count:
            table.move_cursor(row=0, animate=False)  # the newest
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        key = self.query_one(LabTable).cursor_key
        e = next((e for e in self.state.events if f"event:{e['id']}" == key), None)
        text = Text()
        if e is not None:
            text = Text.assemble((fmt_time(e.get("time")), "bold"), "  ", Text(str(e.get("subject", "")), style="bold"),
                                 "\n", Text(str(e.get("message", ""))))
        show_text(self.query_one("#event-detail", Static), text)

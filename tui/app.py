"""The Textual app (minimal for now: the lab's VMs)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header

from engine import Lab


class SrlabApp(App):
    TITLE = "srlab"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, lab: Lab, observer: bool = False):
        super().__init__()
        self.lab = lab
        self.observer = observer

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="vms", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        st = self.lab.status()
        self.sub_title = f"{st['name']} - lab time {st['now_text']}"
        table = self.query_one(DataTable)
        table.add_columns("VM", "location", "power", "protection", "disks")
        for vm in st["vms"]:
            table.add_row(
                Text(vm["name"]), Text(vm["location"]), vm["power"], vm["protection"], str(len(vm["disks"]))
            )

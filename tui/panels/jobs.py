"""Jobs (key 4): the job list and the selected job's steps, as in the seed's job-details screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..host import Confirm
from ..state import LabState, fmt_day_time, fmt_duration, fmt_time
from ..widgets import Column, LabTable
from .base import Panel, PanelAction

JOB_COLUMNS_WIDE = [
    Column("id", "ID", 3),
    Column("name", "Name", 36),
    Column("target", "Target", 18),
    Column("state", "State", 18),
    Column("started", "Started", 14),
    Column("duration", "Duration", 8),
]
# At 80 columns the target goes: the seed's job names carry it ("MYWSV01 (Enable protection)").
JOB_COLUMNS = [
    Column("id", "ID", 3),
    Column("name", "Name", 28),
    Column("state", "State", 18),
    Column("started", "Started", 8),
    Column("duration", "Duration", 8),
]
STEP_COLUMNS = [
    Column("name", "Step", 34),
    Column("state", "State", 11),
    Column("started", "Started", 8),
    Column("ended", "Ended", 8),
    Column("duration", "Took", 7),
]
WIDE_MIN = 110


def state_style(state: str, colors: dict) -> str:
    return {
        "succeeded": colors["ok"],
        "failed": colors["error"],
        "cancelled": "dim",
        "waiting for action": f"bold {colors['warning']}",
        "in progress": colors["accent"],
    }.get(state, "")


class Jobs(Panel):
    PANEL_ID = "jobs"
    TITLE = "Jobs"
    KEY = "4"
    ACTIONS = [
        PanelAction("steps", "enter", "Steps", "Job steps",
                    "move into the selected job's steps (esc comes back)", mutates=False, key_display="⏎",
                    priority=True),
        PanelAction("complete_job", "a", "Complete", "Complete manual action",
                    "complete the action a job is waiting for"),
    ]

    def compose(self) -> ComposeResult:
        yield LabTable(JOB_COLUMNS, id="jobs-table", title="Jobs (newest first)")
        yield LabTable(STEP_COLUMNS, id="steps-table", title="Steps")
        yield Static("", id="job-error")

    @property
    def jobs_table(self) -> LabTable:
        return self.query_one("#jobs-table", LabTable)

    @property
    def steps_table(self) -> LabTable:
        return self.query_one("#steps-table", LabTable)

    def selected_job(self) -> dict | None:
        key = self.jobs_table.cursor_key
        if not key or not key.startswith("job:"):
            return None
        jid = key[4:]
        return next((j for j in self.state.jobs if str(j["id"]) == jid), None)

    compact = True

    def on_resize(self) -> None:
        compact = self.app.size.width < WIDE_MIN
        if compact != self.compact:
            self.compact = compact
            self.jobs_table.set_columns(JOB_COLUMNS if compact else JOB_COLUMNS_WIDE)
            self.update_state(self.state)

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        rows = []
        for j in state.jobs:
            cells = [
                Text(str(j["id"]), justify="right"),
                Text(str(j.get("name", "")), no_wrap=True, overflow="ellipsis"),
                Text(str(j.get("target", "")), no_wrap=True, overflow="ellipsis"),
                Text(str(j.get("state", "")), style=state_style(str(j.get("state", "")), colors)),
                Text(fmt_time(j.get("started"), True) if self.compact else fmt_day_time(j.get("started"))),
                Text(fmt_duration(j.get("duration"))),
            ]
            if self.compact:
                del cells[2]
            rows.append((f"job:{j['id']}", tuple(cells)))
        if not rows:
            rows.append(("none", (Text(""), Text("no jobs yet", style="dim"))))
        self.jobs_table.set_rows(rows)
        self.show_steps()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "jobs-table":
            self.show_steps()
        self.host.refresh_bindings()

    def show_steps(self) -> None:
        colors = self.host.status_colors
        job = self.selected_job()
        steps = self.steps_table
        err = self.query_one("#job-error", Static)
        if job is None:
            steps.base_title = "Steps"
            steps.set_filter(steps.filter_text)
            steps.set_rows([])
            err.update("")
            err.display = False
            return
        detail = self.state.job_details.get(job["id"], {})
        steps.base_title = f"Steps of job {job['id']}: {job.get('name', '')} · {job.get('target', '')}"
        steps.set_filter(steps.filter_text)
        rows = []
        for i, s in enumerate(detail.get("steps", [])):
            started, ended = s.get("started"), s.get("ended")
            dur = (ended - started) if (started is not None and ended is not None) else (
                (self.state.now - started) if started is not None else None)
            rows.append((f"step:{job['id']}:{i}", (
                Text(str(s.get("name", "")), no_wrap=True, overflow="ellipsis"),
                Text(str(s.get("state", "")), style=state_style(str(s.get("state", "")), colors)),
                Text(fmt_time(started, True) if started is not None else "-"),
                Text(fmt_time(ended, True) if ended is not None else "-"),
                Text(fmt_duration(dur) if dur is not None else "-"),
            )))
        steps.set_rows(rows)
        error = detail.get("error") or ""
        err.display = bool(error)
        if error:
            err.update(Text.assemble(("Error: ", f"bold {colors['error']}"), Text(str(error))))

    show_detail = show_steps  # what the filter refreshes when the cursor row changes

    # ---- actions -----------------------------------------------------------------------------

    def reason(self, action_id: str) -> str | None:
        job = self.selected_job()
        if action_id == "steps":
            return None if job else "no job selected"
        if action_id == "complete_job":
            if job is None:
                return "no job selected"
            return self.state.reason("complete_job", str(job["id"]))
        return None

    def action_steps(self) -> None:
        if self.app.focused is self.steps_table:
            return
        self.steps_table.focus()

    def action_complete_job(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        jid = job["id"]
        lines = [Text.assemble("Complete the manual action job ", (str(jid), "bold"), " waits for: ",
                               Text(str(job.get("name", ""))), ".")]
        self.show_dialog(Confirm("Complete manual action", lines, lambda lab: lab.complete_job(jid),
                                 ok_label="Complete"))

    def back(self) -> bool:
        """esc from the steps goes back to the job list."""
        if self.app.focused is self.steps_table:
            self.jobs_table.focus()
            return True
        return False

    def filter_table(self) -> LabTable | None:
        if self.app.focused is self.steps_table:
            return self.steps_table
        return self.jobs_table

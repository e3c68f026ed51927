"""Jobs (key 4): the job list and the selected job's steps, as in the seed's job-details screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from engine import JobState

from ..host import CompleteForm
from ..state import LabState, fmt_day_time, fmt_duration, fmt_time, waiting_step
from ..widgets import Column, LabTable, line_count, show_text
from .base import Panel, PanelAction

JOB_COLUMNS_WIDE = [
    Column("id", "ID", 3),
    Column("name", "Name", 36, grow=2),
    Column("target", "Target", 18, grow=1),
    Column("state", "State", 18),
    Column("started", "Started", 14),
    Column("duration", "Duration", 8),
]
# At 80 columns the target goes: the seed's job names carry it ("MYWSV01 (Enable protection)").
JOB_COLUMNS = [
    Column("id", "ID", 3),
    Column("name", "Name", 28, grow=1),
    Column("state", "State", 18),
    Column("started", "Started", 8),
    Column("duration", "Duration", 8),
]
STEP_COLUMNS = [
    Column("name", "Step", 34, grow=1),
    Column("state", "State", 11),
    Column("started", "Started", 8),
    Column("ended", "Ended", 8),
    Column("duration", "Took", 7),
]
WIDE_MIN = 110


def state_style(state: str, colors: dict) -> str:
    return {
        JobState.SUCCEEDED: colors["ok"],
        JobState.FAILED: colors["error"],
        JobState.CANCELLED: "dim",
        JobState.WAITING: f"bold {colors['warning']}",
        JobState.IN_PROGRESS: colors["accent"],
    }.get(state, "")


ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Jobs(Panel):
    PANEL_ID = "jobs"
    TITLE = "Jobs"
    KEY = "4"
    ACTIONS = [
        PanelAction("steps", "enter", "Steps", "Job steps",
                    "move into the selected job's steps (esc comes back)", mutates=False, key_display="⏎",
                    priority=True),
        PanelAction("complete_job", "a", "Complete", "Complete test / manual action",
                    "complete the step a job waits for (Complete test, start a failback...), with a note"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: dict | None = None  # job id -> its state in the last lab state shown (None: none yet)
        self.named: int | None = None  # the job a notification (or a command just run) named

    def name_job(self, job_id: int) -> None:
        """Open on this job next time (a command started it, a notification named it)."""
        self.named = job_id

    def opened(self) -> None:
        table = self.jobs_table
        key = f"job:{self.named}" if self.named is not None else None
        self.named = None
        if key in table.row_keys:
            table.move_cursor(row=table.get_row_index(key), animate=False)
        elif table.row_count:
            table.move_cursor(row=0, animate=False)  # the newest
        self.show_steps()

    def compose(self) -> ComposeResult:
        yield LabTable(JOB_COLUMNS, id="jobs-table", title="Jobs (newest first)")
        yield LabTable(STEP_COLUMNS, id="steps-table", title="Steps")
        yield Static("", id="job-error")
        yield Static("", id="job-report")

    def on_mount(self) -> None:
        self.query_one("#job-report").border_title = "Report"

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
        self.fit()

    def fit(self) -> None:
        """The steps and the report show all their lines when the job list's rows leave room for
        them; otherwise the steps get up to 9 lines and the report up to 8. The list takes the rest."""
        avail = self.size.height
        if avail <= 0:
            return
        jobs, steps = self.jobs_table, self.steps_table
        report = self.query_one("#job-report", Static)
        err = self.query_one("#job-error", Static)
        report_need = line_count(report, wraps=True) + 1 if report.display else 0
        below = steps.fit_height() + report_need + (min(3, line_count(err)) if err.display else 0)
        if jobs.fit_height() + below <= avail:
            heights = (max(steps.fit_height(), 5), report_need or "auto")
        elif report.display:
            heights = (min(9, steps.fit_height()), min(8, report_need))
        else:
            heights = (9, "auto")
        if self._fitted.get(0) != heights:
            self._fitted[0] = heights
            steps.styles.height, report.styles.height = heights

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
        table = self.jobs_table
        keys = table.row_keys
        follow = bool(keys) and table.cursor_key == keys[0]  # on the newest job: stay on the newest
        table.set_rows(rows)
        if follow and table.row_keys and table.row_keys[0] != keys[0]:
            table.move_cursor(row=0, animate=False)
        self.tell_changes(state)
        self.show_steps()

    def tell_changes(self, state: LabState) -> None:
        """Say when a job comes to wait for action, and when a job with a report (a failover)
        ends: wherever the user is, they learn it without watching this panel."""
        if not state.loaded:
            return
        before, self.seen = self.seen, {j["id"]: j.get("state") for j in state.jobs}
        if before is None:  # the lab as the app found it: nothing to tell
            return
        for j in state.jobs:
            now = j.get("state")
            if before.get(j["id"]) == now:
                continue
            name = str(j.get("name", ""))
            if now == JobState.WAITING:
                self.name_job(j["id"])
                step = waiting_step(state, j["id"]) or "an action"
                self.app.notify(f"job {j['id']} {name} waits for action: {step}. Jobs (4): complete it with a note.",
                                title=JobState.WAITING.value, severity="warning", timeout=10, markup=False)
            elif now in ENDED and j["id"] in state.reports and not self.showing(j["id"]):
                self.name_job(j["id"])
                self.app.notify(f"job {j['id']} {name} {now}: its report is on Jobs (4).", title="job report",
                                timeout=10, markup=False,
                                severity="error" if now == JobState.FAILED else "information")

    def showing(self, job_id) -> bool:
        """Is this job's detail on the screen now?"""
        job = self.selected_job()
        return self.display and job is not None and job["id"] == job_id

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "jobs-table":
            self.show_steps()
        self.host.refresh_bindings()

    def show_steps(self) -> None:
        colors = self.host.status_colors
        job = self.selected_job()
        steps = self.steps_table
        err = self.query_one("#job-error", Static)
        report = self.query_one("#job-report", Static)
        if job is None:
            steps.base_title = "Steps"
            steps.set_filter(steps.filter_text)
            steps.set_rows([])
            err.update("")
            err.display = False
            report.display = False
            self.fit()
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
        lines = self.state.reports.get(job["id"], [])
        report.display = bool(lines)
        if lines:
            show_text(report, Text("\n").join(Text(line) for line in lines))
        self.fit()  # a report takes the room the steps table does not need

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
        if job is not None:
            self.show_dialog(CompleteForm(job["id"]))

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

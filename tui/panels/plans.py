"""Recovery plans (key 5): what they are; the editor comes later."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from .base import Panel

EMPTY = Text.assemble(
    ("No recovery plans yet.\n\n", "bold"),
    "A recovery plan fails over several protected items as one: ordered groups of VMs "
    "(say, database first, then the application tier, then the web front end), with manual "
    "actions and scripts before and after each group. A plan runs test, planned and unplanned "
    "failovers as a single job, group by group.\n\n",
    ("Plans come in a later version of srlab. ", "italic"),
    "Until then, fail protected items over one at a time on Protected items (2): test, planned and "
    "unplanned failover, commit, change recovery point and reprotect are keys there.",
)


class RecoveryPlans(Panel):
    PANEL_ID = "plans"
    TITLE = "Recovery plans"
    KEY = "5"
    ACTIONS = []
    can_focus = True

    def compose(self) -> ComposeResult:
        yield Static(EMPTY, id="plans-empty")

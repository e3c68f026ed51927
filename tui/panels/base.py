"""The panel base: a panel declares its actions; its bindings, key bar, palette entries and
help derive from them. What a panel needs from the app comes through `Host` (tui.host)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding
from textual.containers import Vertical
from textual.widget import Widget

from ..host import DialogRequest, Host, host_of
from ..state import LabState
from ..widgets import LabTable


@dataclass(frozen=True)
class PanelAction:
    """One action of a panel: its key (remappable by id), its footer label and palette entry."""

    id: str
    key: str
    label: str
    title: str
    help: str
    mutates: bool = True
    key_display: str | None = None
    show: bool = True
    priority: bool = False  # wins over the focused table's own use of the key (enter)
    kind: str | None = None  # the kind of row (engine subject kind) it acts on, where a panel mixes kinds


class Panel(Vertical):
    """A panel (one of the 1-7 keys). Subclasses declare ACTIONS; bindings derive from them."""

    PANEL_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    SHORT_TITLE: ClassVar[str] = ""  # the tab bar's word for it on a narrow terminal (default: TITLE)
    KEY: ClassVar[str] = ""
    ACTIONS: ClassVar[list[PanelAction]] = []

    def __init_subclass__(cls, **kw):
        # Bindings derive from ACTIONS; set them before Textual merges the class's bindings.
        cls.BINDINGS = [
            Binding(
                a.key,
                a.id,
                a.label,
                show=a.show,
                key_display=a.key_display,
                id=f"{cls.PANEL_ID}.{a.id}",
                tooltip=a.help,
                priority=a.priority,
            )
            for a in cls.ACTIONS
        ]
        super().__init_subclass__(**kw)

    def __init__(self, **kw):
        super().__init__(id=self.PANEL_ID, **kw)
        self._action_ids = {a.id for a in self.ACTIONS}
        self._fitted: dict[int, tuple] = {}

    @property
    def host(self) -> Host:
        return host_of(self)

    @property
    def state(self) -> LabState:
        return self.host.state

    def show_dialog(self, request: DialogRequest, callback=None) -> None:
        self.host.show_dialog(request, callback)

    # ---- actions: enabled, or disabled with the engine's reason ----------------------------

    def action_by_id(self, action_id: str) -> PanelAction | None:
        return next((a for a in self.ACTIONS if a.id == action_id), None)

    def disabled_reason(self, action_id: str) -> str | None:
        a = self.action_by_id(action_id)
        if a is None:
            return None
        if a.mutates and self.host.observer:
            return self.host.observer_reason()
        if a.mutates and not self.state.judged:
            return "reading the lab: a moment"
        return self.reason(action_id)

    def reason(self, action_id: str) -> str | None:
        """Panel-specific: why not now (from the engine), or None."""
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._action_ids:
            return None if self.disabled_reason(action) else True
        return True

    # ---- content -----------------------------------------------------------------------------

    def update_state(self, state: LabState) -> None:
        """Show a new lab state (diffing, not rebuilding)."""

    def show_detail(self) -> None:
        """Show what belongs to the row under the cursor (a detail pane, a job's steps)."""

    def opened(self) -> None:
        """The panel's key was pressed: lists in time order open on their newest row (or the
        one a notification named)."""

    def table_changed(self) -> None:
        """The filter changed which row is under the cursor: refresh what depends on it."""
        self.show_detail()
        self.host.refresh_bindings()

    def back(self) -> bool:
        """esc inside the panel (leave its steps table...): True if it did something."""
        return False

    def filter_table(self) -> LabTable | None:
        """The table `/` filters: the focused one in this panel, else the first."""
        focused = self.app.focused
        if isinstance(focused, LabTable) and focused in self.query(LabTable):
            return focused
        tables = list(self.query(LabTable))
        return tables[0] if tables else None

    def fit_table(self, table: LabTable, pane: Widget, need: int, most: int = 12) -> None:
        """Share the panel's height between a table and the pane below it: the pane shows all
        the lines it `need`s when the table's rows leave room for them, else up to `most`; the
        table takes the rest."""
        avail = self.size.height
        if avail <= 0:
            return
        height = need if table.fit_height() + need <= avail else max(3, min(need, most, avail - 6))
        if self._fitted.get(id(pane)) != height:
            self._fitted[id(pane)] = height
            pane.styles.height = height

    def focus_default(self) -> None:
        table = self.filter_table()
        # at once, not after the keys already queued (see SrlabApp.BINDINGS)
        self.screen.set_focus(table if table is not None else self)

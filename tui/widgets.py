"""Widgets the panels, the dialogs and the app share: the diffing table, the key bar, the top
line (lab clock), the filter and the `:` command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.cache import LRUCache
from textual.containers import Horizontal
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widgets import DataTable, Input, Static
from textual.widgets.data_table import CellDoesNotExist

from .host import host_of


def show_text(widget: Static, text: Text) -> None:
    """Update a Static only when its text really changed (no repaint for the same text)."""
    if widget.content != text:
        widget.update(text)


def line_count(widget: Static, wraps: bool = False) -> int:
    """How many lines a pane's text takes: one per line, or (`wraps`) as its width wraps them."""
    content = widget.content
    plain = content.plain if isinstance(content, Text) else str(content or "")
    lines = plain.splitlines() or [""]
    width = widget.content_region.width if wraps else 0
    if width <= 0:
        return len(lines)
    return sum(max(1, -(-cell_len(line) // width)) for line in lines)


def as_text(value) -> Text:
    """User strings (VM names, notes...) go in as Text so they are never parsed as markup."""
    if isinstance(value, Text):
        return value
    return Text("" if value is None else str(value))


@dataclass(frozen=True)
class Column:
    """A table column. `width` is its width at 80 columns; `grow` is its share of the width a
    wider terminal gives (0: stays as it is). Width 0 means "what the others leave" (grow 1)."""

    key: str
    label: str
    width: int | None = None
    grow: int = 0


def column_widths(columns: Sequence[Column], avail: int, padding: int) -> list[int | None]:
    """Each column's width in a table `avail` cells wide: fixed widths first, then what is left
    shared among the growing columns by their weights (the last one takes the remainder)."""
    growing = [c for c in columns if c.grow or c.width == 0]
    base = [8 if c.width == 0 else c.width for c in columns]
    used = sum(w or 0 for w in base) + 2 * padding * len(columns)
    extra = max(0, avail - used)
    if not growing or not extra:
        return base
    weights = [c.grow or 1 for c in growing]
    total = sum(weights)
    shares = [extra * w // total for w in weights]
    shares[-1] += extra - sum(shares)
    out = list(base)
    for c, share in zip(growing, shares):
        i = columns.index(c)
        out[i] = (out[i] or 0) + share
    return out


class LabTable(DataTable):
    """A DataTable fed whole row lists and updated by diffing: only changed cells are touched.

    Rows are (key, cells). A filter (the `/` key) hides rows whose text does not contain it.
    Rows whose key is in `sticky` (group headers) are kept by the filter.
    """

    DEFAULT_CSS = """
    LabTable { height: 1fr; }
    """

    # k9s / lazygit / less: the first and the last row
    BINDINGS = [
        Binding("home,g", "first_row", "First row", show=False, id="table.first"),
        Binding("end,G,shift+g", "last_row", "Last row", show=False, id="table.last"),
    ]

    def __init__(self, columns: Sequence[Column], *, id: str | None = None, title: str = "", **kw):
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, **kw)
        self._columns_spec = list(columns)
        self._all: list[tuple[str, tuple]] = []
        self._given: dict[str, tuple] = {}  # key -> (the cells set_rows was given, as shown)
        self._shown: dict[str, tuple] = {}
        self._order: list[str] = []
        self._restore: str | None = None  # the row the cursor was on before the columns changed
        self.filter_text = ""
        self.sticky: set[str] = set()
        self.base_title = title
        self.border_title = title
        # Counters the tests read: proof that updates touch cells, not the whole table.
        self.cell_updates = 0
        self.rebuilds = 0
        self.lines_drawn = 0  # lines DataTable rendered (not kept in _lines)
        # Rendered lines, kept across focus changes and a panel shown again (see render_line)
        self._lines: LRUCache[tuple, tuple[object, Strip]] = LRUCache(1024)
        self._look: tuple | None = None
        self._header = object()  # stands for the header's cells: a new one when the columns change
        self._behind: dict[str, tuple] = {}  # rows that changed far from the view: their cells (_come_near)

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for c, width in zip(self._columns_spec, self._widths()):
            self.add_column(c.label, key=c.key, width=width)

    def _widths(self) -> list[int | None]:
        avail = self.scrollable_content_region.width or (self.app.size.width - 4)
        return column_widths(self._columns_spec, avail, self.cell_padding)

    def on_resize(self) -> None:
        if self.columns and self._widths() != [c.width for c in self.columns.values()]:
            self._rebuild(keep_rows=True)
        self._come_near()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._come_near()

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def fit_height(self) -> int:
        """The height that shows every row: the rows, the header line and the border."""
        return len(self._order) + (1 if self.show_header else 0) + 2

    # ---- columns can change with the terminal width (a rebuild, only then) -----------------

    def set_columns(self, columns: Sequence[Column]) -> None:
        if [(c.key, c.label, c.width) for c in columns] == [
            (c.key, c.label, c.width) for c in self._columns_spec
        ]:
            return
        same_keys = [c.key for c in columns] == self.column_keys
        self._columns_spec = list(columns)
        self._rebuild(keep_rows=same_keys)

    def _rebuild(self, keep_rows: bool) -> None:
        cursor = self.cursor_key
        self.clear(columns=True)
        self._lines.clear()
        self._behind.clear()
        self._header = object()
        self.rebuilds += 1
        self._shown.clear()
        self._order = []
        if not keep_rows:
            self._all = []  # rows were built for the old columns: the owner sets them again
            self._given = {}
            self._restore = cursor  # ... and the cursor goes back to its row then
        self._add_columns()
        self._apply(cursor)

    @property
    def column_keys(self) -> list[str]:
        return [c.key for c in self._columns_spec]

    # ---- rendering ---------------------------------------------------------------------------

    # DataTable forgets every rendered row when the table gains or loses focus or is shown again
    # (a panel switch, a dialog closed): on a 1,000-VM lab that is some 200 cells rendered again
    # per key. A line is kept here as long as what it is drawn from is the same: its row's cells
    # (the very tuple _apply shows), whether the cursor is on it, and the look of the table (its
    # width, horizontal scroll, focus and styles: the theme's colours are in them).
    LOOK = ("datatable--cursor", "datatable--header", "datatable--hover", "datatable--fixed",
            "datatable--fixed-cursor", "datatable--odd-row", "datatable--even-row")

    def render_lines(self, crop: Region) -> list[Strip]:
        self._look = (self.size.width, self.scroll_offset.x, self.rich_style, self.has_focus, self.cursor_type,
                      self.show_cursor, self.show_header, self.zebra_stripes,
                      tuple(self.get_component_rich_style(c, partial=False) for c in self.LOOK))
        try:
            return super().render_lines(crop)
        finally:
            self._look = None

    def render_line(self, y: int) -> Strip:
        if self._look is None or self.mouse_hover or self.fixed_rows or self.fixed_columns:
            return super().render_line(y)  # (under the mouse: the hover cursor is DataTable's own)
        header = self.header_height if self.show_header else 0
        line = y if y < header else y + self.scroll_offset.y
        row = line - header
        if row >= len(self._order):
            return super().render_line(y)
        what = self._header if row < 0 else self._shown.get(self._order[row])
        key = (line, row == self.cursor_row, self._look)
        hit = self._lines.get(key)
        if hit is not None and hit[0] is what:
            return hit[1]
        strip = super().render_line(y)
        self._lines[key] = (what, strip)
        self.lines_drawn += 1
        return strip

    # ---- rows ------------------------------------------------------------------------------

    def set_rows(self, rows: Iterable[tuple[str, Sequence]]) -> None:
        """Give the table its full row list; it shows the difference from what it shows now.
        A row given as the same cells object as last time is known unchanged at once."""
        given, self._given = self._given, {}
        all_ = []
        for k, cells in rows:
            was = given.get(k)
            shown = was[1] if was is not None and was[0] is cells else self._cells(cells)
            self._given[k] = (cells, shown)
            all_.append((k, shown))
        self._all = all_
        restore, self._restore = self._restore, None
        self._apply(restore if restore is not None and any(k == restore for k, _ in self._all) else self.cursor_key)

    def _cells(self, cells: Sequence) -> tuple:
        n = len(self._columns_spec)
        out = [as_text(c) for c in cells][:n]
        for t in out:  # one line per row; long text ends in an ellipsis at the column's edge
            t.no_wrap = True
            if t.overflow is None:
                t.overflow = "ellipsis"
        out += [Text("")] * (n - len(out))
        return tuple(out)

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.border_title = f"{self.base_title}  /{text}" if text else self.base_title
        cursor = self.cursor_key
        self._apply(cursor)
        if text and (cursor not in self._order or self.cursor_key in self.sticky or self.cursor_key is None):
            # land on the first row that really matches, not on a group header kept for context
            first = next((k for k in self._order if k not in self.sticky), None)
            if first is not None:
                self.move_cursor(row=self.get_row_index(first), animate=False)

    def _visible(self) -> list[tuple[str, tuple]]:
        f = self.filter_text.lower().strip()
        if not f:
            return self._all
        return [(k, cells) for k, cells in self._all if k in self.sticky or any(f in c.plain.lower() for c in cells)]

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    @property
    def row_keys(self) -> list[str]:
        return list(self._order)

    # A row that changed further than FAR rows from the view gets its new cells when it comes
    # near (scrolled to, or the table resized): at 60x every row of a 1,000-VM table changes on
    # every read (its RPO), and DataTable.update_cell costs ~10 us a cell.
    FAR = 100

    def _near(self) -> range:
        """The indexes of the rows near the view (all of them before the table has a size)."""
        top, height = round(self.scroll_offset.y), self.size.height
        return range(max(0, top - self.FAR), top + height + self.FAR + 1) if height else range(len(self._all))

    def _apply(self, cursor: str | None) -> None:
        if not self.is_mounted or not self.columns:
            return
        rows = self._visible()
        want = [k for k, _ in rows]
        want_set = set(want)
        for k in [k for k in self._order if k not in want_set]:
            self.remove_row(k)
            del self._shown[k]
            self._behind.pop(k, None)
        self._order = [k for k in self._order if k in want_set]
        near = self._near()
        for i, (k, cells) in enumerate(rows):
            old = self._shown.get(k)
            if old is None:
                self.add_row(*cells, key=k)
                self._order.append(k)
            elif old is not cells:
                if old == cells:
                    cells = old  # the same row: its lines drawn already stay (render_line)
                elif k != cursor and i not in near:
                    self._behind[k] = cells
                    continue
                else:
                    self._set_cells(k, old, cells)
            self._behind.pop(k, None)
            self._shown[k] = cells
        if self._order != want:
            self._reorder(want)
            self._come_near()  # (rows that moved near)
        if cursor is not None and cursor in want_set:
            idx = self.get_row_index(cursor)
            if idx != self.cursor_row:
                self.move_cursor(row=idx, animate=False, scroll=True)

    def _set_cells(self, key: str, old: tuple, cells: tuple) -> None:
        for col, a, b in zip(self.column_keys, old + (None,) * (len(cells) - len(old)), cells):
            if a is not b and a != b:
                self.update_cell(key, col, b, update_width=False)
                self.cell_updates += 1

    def _come_near(self) -> None:
        """The rows near the view now that changed while they were far get their cells."""
        if not self._behind or not self.size.height:
            return
        near = self._near()
        for k in self._order[near.start:near.stop]:
            cells = self._behind.pop(k, None)
            if cells is not None:
                self._set_cells(k, self._shown[k], cells)
                self._shown[k] = cells

    def _reorder(self, want: list[str]) -> None:
        # DataTable.sort hands the key function a row's cells; each row's first cell is its own
        # object, so its identity tells the row.
        first = self.column_keys[0]
        rank = {id(self.get_cell(k, first)): i for i, k in enumerate(want)}
        self.sort(key=lambda values: rank.get(id(values[0]), len(rank)))
        self._order = list(want)


class KeyBar(Static):
    """The footer: every key of the focused panel, then the global ones; disabled keys greyed.

    Unlike Textual's one-line Footer it wraps onto a second line when the terminal is narrow
    (80 columns), so no key is cut off."""

    DEFAULT_CSS = """
    KeyBar { height: auto; max-height: 2; background: $panel; padding: 0 1; }
    """

    home: Screen  # the screen whose keys it shows (kept: `self.screen` is gone once unmounted)

    def on_mount(self) -> None:
        self.home = self.screen
        self.home.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.show_keys)

    def on_unmount(self) -> None:
        self.home.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen) -> None:
        self.call_after_refresh(self.show_keys)

    def on_resize(self) -> None:
        self.show_keys()

    def groups(self) -> list[tuple[str, str, bool]]:
        """(key, label, enabled) of every key the bar shows when there is room."""
        return [(key, label, enabled) for key, label, enabled, _everywhere in self.key_entries()]

    def key_entries(self) -> list[tuple[str, str, bool, bool]]:
        """(key, label, enabled, works everywhere) of every key, the panel's first. While a line
        of text is typed (the filter, the command line) its own keys."""
        hints = getattr(self.home.focused, "KEY_HINTS", None)
        if hints:
            return [(key, label, True, False) for key, label in hints]
        out: list[tuple[str, str, bool, bool]] = []
        seen: set[tuple[int, str]] = set()
        for _key, ab in self.home.active_bindings.items():
            b = ab.binding
            if not b.show or (id(ab.node), b.action) in seen:
                continue
            seen.add((id(ab.node), b.action))
            out.append((self.app.get_key_display(b), b.description, ab.enabled, ab.node is self.app))
        if self.app.ENABLE_COMMAND_PALETTE:
            out.append(("^p", "palette", True, True))
        return out

    def show_keys(self) -> None:
        # may run after its screen was popped (a drill-down closed): then there is nothing to do
        if not self.is_mounted or not self.is_attached or self.home not in self.app.screen_stack:
            return
        width = max(20, self.size.width or self.app.size.width - 2)  # the bar inside its padding
        entries = self.key_entries()
        lines = self.key_lines(entries, width)
        # More keys than two lines hold: greyed keys give way, the panel's last first, then the
        # global ones (`?` lists them all, with why they are greyed)
        for everywhere in (False, True):
            while len(lines) > 2:
                greyed = [i for i, (_k, _l, enabled, glob) in enumerate(entries) if not enabled and glob == everywhere]
                if not greyed:
                    break
                del entries[greyed[-1]]
                lines = self.key_lines(entries, width)
        show_text(self, Text("\n").join(lines[:2]))

    def key_lines(self, entries: list[tuple[str, str, bool, bool]], width: int) -> list[Text]:
        """The key bar's lines for these keys, wrapped between keys at `width`."""
        accent = self.app.get_css_variables().get("accent", "cyan")
        lines: list[Text] = [Text()]
        for key, label, enabled, _everywhere in entries:
            chunk = Text.assemble((key, f"bold {accent}" if enabled else "dim"), " ",
                                  (label, "" if enabled else "dim"))
            line = lines[-1]
            need = len(chunk) + (2 if line.plain else 0)
            if line.plain and len(line) + need > width:
                lines.append(Text())
                line = lines[-1]
            if line.plain:
                line.append("  ")
            line.append_text(chunk)
        return lines


class FilterInput(Input):
    """The `/` filter line of a panel: typing filters, enter keeps it, esc clears it."""

    KEY_HINTS = [("⏎", "keep the filter"), ("esc", "clear it"), ("type", "rows that contain the text")]
    DEFAULT_CSS = """
    FilterInput, FilterInput:focus { dock: bottom; display: none; height: 1; border: none; padding: 0 1; }
    FilterInput.-active { display: block; }
    """


class CommandInput(Input):
    """The `:` command line: the srlab command line's own commands (`failover MYWSV01 --kind
    test`), run on this lab. up / down recall earlier lines."""

    KEY_HINTS = [("⏎", "run"), ("esc", "cancel"), ("↑↓", "earlier commands"),
                 ("", "srlab's commands: failover VM --kind test, verify VM, run --for 2h, help")]
    BINDINGS = [
        Binding("up", "history(-1)", "Earlier", show=False),
        Binding("down", "history(1)", "Later", show=False),
    ]
    DEFAULT_CSS = """
    CommandInput, CommandInput:focus { dock: bottom; display: none; height: 1; border: none; padding: 0 1; }
    CommandInput.-active { display: block; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.history: list[str] = []
        self._at = 0

    def remember(self, line: str) -> None:
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._at = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._at = max(0, min(len(self.history), self._at + step))
        self.value = self.history[self._at] if self._at < len(self.history) else ""
        self.cursor_position = len(self.value)


class AppBar(Horizontal):
    """The top line of every screen: the lab's name on the left, the lab clock on the right
    (running or PAUSED, the lab time, the speed, OBSERVER, how far behind). The app says what
    it shows (Host.header_text)."""

    DEFAULT_CSS = """
    AppBar { height: 1; background: $panel; dock: top; }
    AppBar > .bar-title { width: 1fr; padding: 0 1; }
    AppBar > .bar-clock { width: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static("srlab", classes="bar-title", id="bar-title" if self.id == "appbar" else None)
        yield Static("", classes="bar-clock", id="bar-clock" if self.id == "appbar" else None)

    def on_mount(self) -> None:
        self.show(*host_of(self).header_text())

    def show(self, left: Text, right: Text) -> None:
        show_text(self.query_one(".bar-title", Static), left)
        show_text(self.query_one(".bar-clock", Static), right)

"""SVG snapshots of every panel at 80x24, 120x40 and 160x45: frozen lab clock, no blinking
cursor, no animation. Update them after a deliberate change with: pytest tests/tui --snapshot-update"""

from __future__ import annotations

import pytest

from engine import Lab
from tests.conftest import SMALL_SITE, shared_folder, step2

from .helpers import make_app, settle, type_text

PANEL_KEYS = {"dashboard": "1", "protected": "2", "resources": "3", "jobs": "4", "plans": "5", "events": "6"}
SIZES = {"80x24": (80, 24), "120x40": (120, 40), "160x45": (160, 45)}


@pytest.fixture(scope="module")
def snap_lab(tmp_path_factory):
    """The small site after STEP 2: WEB01 protected for two hours, IDLE01 being enabled."""
    with shared_folder(tmp_path_factory, "snap") as d:
        (d / "small.toml").write_text(SMALL_SITE)
        lab = Lab.create(d / "lab", d / "small.toml")
        step2(lab, retention_h=1, app_consistent_h=1)
        lab.protect(["WEB01"])
        lab.run(2 * 3600)
        lab.protect(["IDLE01"])
        lab.run(30)
        yield lab
        lab.close()


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("panel", list(PANEL_KEYS))
def test_panel(snap_compare, snap_lab, panel, size):
    app = make_app(snap_lab)
    assert snap_compare(app, press=[PANEL_KEYS[panel]], terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("panel", ["dashboard", "protected"])
def test_light_theme(snap_compare, snap_lab, panel):
    app = make_app(snap_lab, theme="textual-light")
    assert snap_compare(app, press=[PANEL_KEYS[panel]], terminal_size=(80, 24), run_before=settle)


def test_cloud_protection_form(snap_compare, tmp_path):
    (tmp_path / "small.toml").write_text(SMALL_SITE)
    lab = Lab.create(tmp_path / "lab", tmp_path / "small.toml")
    lab.run_until_done([lab.register_server("SC01")])
    lab.run_until_done([lab.install_agent("HV01")])
    app = make_app(lab)
    try:
        assert snap_compare(app, press=["3", "c"], terminal_size=(80, 24), run_before=settle)
    finally:
        lab.close()


def test_refused_action_says_why(snap_compare, snap_lab):
    """c on a cloud with protected VMs: the engine's reason, in a notification."""
    app = make_app(snap_lab)
    assert snap_compare(app, press=["3", "c"], terminal_size=(80, 24), run_before=settle)


def test_help(snap_compare, snap_lab):
    app = make_app(snap_lab)
    assert snap_compare(app, press=["2", "question_mark"], terminal_size=(80, 24), run_before=settle)


def test_observer(snap_compare, snap_lab):
    app = make_app(snap_lab, observer=True)
    assert snap_compare(app, press=["2"], terminal_size=(80, 24), run_before=settle)


@pytest.fixture(scope="module")
def failover_lab(tmp_path_factory):
    """The small site after STEP 2, WEB01 and IDLE01 protected for two hours; then WEB01 failed
    over (planned) to Azure and committed."""
    with shared_folder(tmp_path_factory, "failover") as d:
        (d / "small.toml").write_text(SMALL_SITE)
        lab = Lab.create(d / "lab", d / "small.toml")
        step2(lab, retention_h=1, app_consistent_h=1)
        lab.protect(["WEB01", "IDLE01"])
        lab.run(2 * 3600)
        lab.run_until_done(lab.failover(["WEB01"], "planned"))
        lab.run_until_done(lab.commit(["WEB01"]))
        yield lab
        lab.close()


def test_failover_dialog(snap_compare, snap_lab):
    """U on a Ready VM: direction, kinds, every retained point (time, type, last transaction),
    network and the shutdown-and-sync option."""
    app = make_app(snap_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter", "U"], terminal_size=(80, 24),
                        run_before=settle)


def test_failback_dialog(snap_compare, failover_lab):
    """F on a VM running in Azure: its failback, the sync options, the other kinds greyed with why."""
    app = make_app(failover_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter", "F"], terminal_size=(80, 24),
                        run_before=settle)


def test_failover_report(snap_compare, failover_lab):
    """The planned failover's job: its steps and, below, its report."""
    app = make_app(failover_lab)
    assert snap_compare(app, press=["4", "down"], terminal_size=(80, 24), run_before=settle)


def test_filter_line(snap_compare, snap_lab):
    """/ at 80x24: the text typed shows in the filter line, and the key bar says what enter and esc do."""
    app = make_app(snap_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB"], terminal_size=(80, 24), run_before=settle)


def test_vm_details(snap_compare, snap_lab):
    """enter on a VM: the header, its disks, every point with its last transaction, the proof pane."""
    app = make_app(snap_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter", "enter"], terminal_size=(80, 24),
                        run_before=settle)


def test_dangerous_confirmation(snap_compare, snap_lab):
    """ctrl+d (disable protection): the dialog starts on Cancel."""
    app = make_app(snap_lab)
    assert snap_compare(app, press=["2", "slash", *"WEB01", "enter", "ctrl+d"], terminal_size=(80, 24),
                        run_before=settle)


def test_command_output(snap_compare, snap_lab):
    """:points WEB01 — the command line's own output, in the app, with its exit code."""
    app = make_app(snap_lab)

    async def run_command(pilot):
        await settle(pilot)
        await pilot.press("colon")
        await type_text(pilot, "points WEB01")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, press=[], terminal_size=(80, 24), run_before=run_command)

"""Make the SVG screenshots in docs/: the sample lab (seed 004) after STEP 2, every main panel.

    .venv/bin/python -m tests.tui.screenshots [OUT_DIR]     (default: docs/)
    .venv/bin/python -m tests.tui.screenshots --physical [OUT_DIR]    (only seed 003's)

Not a test: it builds a fresh sample lab in a temporary folder, takes it through STEP 2 with
the engine (the keyboard path is tests/tui/test_step2.py), and saves what the app shows; then
it cuts the link (fault link-down) and saves the faults panel and an item's health; then the
Azure -> Azure sample (seed 002) protected for two hours: its regions and VMs, its resources;
then the physical sample (seed 003), set up as its walkthrough does, protected for an hour, then
an hour with process server PS02's outbound 443 blocked: its Resources, the data path through PS02.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from engine import Lab
from tests.conftest import ROOT, SAMPLES, step2
from tests.tui.helpers import keys, make_app, settle

SHOTS = [
    # (file name, terminal size, keys pressed after the app settles)
    ("tui-dashboard.svg", (80, 24), ["1"]),
    ("tui-protected-items.svg", (80, 24), ["2", "slash", *"MYWSV01", "enter"]),
    ("tui-protected-items-wide.svg", (160, 45), ["2", "down", "down"]),
    ("tui-resources.svg", (80, 24), ["3"]),
    ("tui-cloud-form.svg", (80, 24), ["3", "slash", *"OnPrem", "enter", "c"]),
    ("tui-jobs.svg", (80, 24), ["4", "slash", *"MYWSV01 (Enable", "enter"]),
    ("tui-vm-details.svg", (80, 24), ["2", "slash", *"MYWSV01", "enter", "enter"]),
    ("tui-failover.svg", (80, 24), ["2", "slash", *"MYWSV01", "enter", "f"]),
    ("tui-events.svg", (80, 24), ["6"]),
    ("tui-help.svg", (80, 24), ["2", "question_mark"]),
    ("tui-command.svg", (80, 24), ["colon", *"points MYWSV01", "enter"]),
]
# taken after the link is cut for three hours and 45 minutes of lab time have passed
FAULT_SHOTS = [
    ("tui-faults.svg", (80, 24), ["7", "tab"]),
    ("tui-health.svg", (80, 24), ["2", "slash", *"MYWSV01", "enter", "enter"]),
]
# the Azure -> Azure sample (seed 002): three VMs protected for two hours
A2A_SHOTS = [
    ("tui-azure.svg", (120, 36), ["2", "slash", *"WEB01", "enter"]),
    ("tui-azure-resources.svg", (120, 36), ["3"]),
]
# the physical servers sample (seed 003): an hour protected, then an hour with PS02:443-out blocked
PHYSICAL_SHOTS = [
    ("physical-resources.svg", (120, 36), ["3", "down", "down"]),
]
KEY_NAMES = {" ": "space", "(": "left_parenthesis", "/": "slash", ":": "colon"}


def build_lab(where: Path) -> Lab:
    lab = Lab.create(where / "lab", SAMPLES / "hyperv-to-azure.toml")
    step2(lab, retention_h=2, app_consistent_h=1)
    lab.run_until_done(lab.protect(["MYWSV01"]))
    lab.run(3 * 3600)
    lab.protect(["MYBSD01"])
    lab.run(150)
    return lab


def build_a2a_lab(where: Path) -> Lab:
    lab = Lab.create(where / "a2a", SAMPLES / "azure-to-azure.toml")
    lab.run_until_done(lab.protect(["WEB01", "WEB02", "SQL01"]))
    lab.run(2 * 3600)
    return lab


def build_physical_lab(where: Path) -> Lab:
    """The brief's walkthrough of seed 003: CS01 registered, the mobility service pushed to WEB01
    and APP01 and installed by hand on SQL01 and SQL02, policy Gold associated, the web servers
    through CS01, the SQL servers through PS02 in a group; an hour; then PS02's 443 out blocked
    for an hour (its cache fills)."""
    lab = Lab.create(where / "physical", SAMPLES / "physical-to-azure.toml")
    lab.run_until_done([lab.register_server("CS01")])
    lab.run_until_done(lab.install_mobility(["WEB01", "APP01"], push=True) + lab.install_mobility(["SQL01", "SQL02"]))
    lab.create_policy("Gold")
    lab.associate_policy("Gold", "CS01")
    lab.run_until_done(lab.protect(["WEB01", "APP01"], policy="Gold")
                       + lab.protect(["SQL01", "SQL02"], policy="Gold", process_server="PS02", group="SQLGroup"))
    lab.run(3600)
    lab.fault_inject("port-blocked", "PS02:443-out")
    lab.run(3600)
    return lab


def break_link(lab: Lab) -> None:
    """Seed 000's outage: the network between the sites is cut for three hours; 45 minutes in."""
    lab.fault_inject("link-down", duration=3 * 3600)
    lab.run(45 * 60)


async def shoot(lab: Lab, out: Path, shots=SHOTS) -> None:
    for name, size, presses in shots:
        app = make_app(lab)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await keys(pilot, *[KEY_NAMES.get(k, k) for k in presses])
            await pilot.pause(0.2)
            app.save_screenshot(str(out / name))
        print(out / name)


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--physical"]
    out = Path(args[0]) if args else ROOT / "docs"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lab = build_physical_lab(Path(tmp))
        try:
            asyncio.run(shoot(lab, out, PHYSICAL_SHOTS))
        finally:
            lab.close()
        if "--physical" in sys.argv:
            return
        lab = build_lab(Path(tmp))
        try:
            asyncio.run(shoot(lab, out))
            break_link(lab)
            asyncio.run(shoot(lab, out, FAULT_SHOTS))
        finally:
            lab.close()
        lab = build_a2a_lab(Path(tmp))
        try:
            asyncio.run(shoot(lab, out, A2A_SHOTS))
        finally:
            lab.close()


if __name__ == "__main__":
    main()

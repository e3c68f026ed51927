"""Azure -> Azure (seed 002) in the app, by keyboard: the protect dialog asks for the target
region and its resources, Protected items groups VMs by region, a VM's details show both sides'
resources (those Site Recovery created marked) and its cache's waiting bytes, Resources lists each
region and what was created for whom, planned failover is greyed with the rules table's reason,
and a failover, commit and reprotect run from keys. The lab clock is frozen."""

from __future__ import annotations


import pytest
from textual.widgets import Select, Static

from engine import Failover, Lab, Protection
from tui.dialogs import ConfirmDialog, FailoverDialog, ProtectDialog

from tests.conftest import shared_folder, small_a2a_site

from .helpers import filter_to, keys, make_app, settle


@pytest.fixture
def a2a(tmp_path):
    lab = Lab.create(tmp_path / "lab", small_a2a_site(tmp_path))
    yield lab
    lab.close()


def vm(lab: Lab, name: str) -> dict:
    return next(v for v in lab.status()["vms"] if v["name"] == name)


def detail(app) -> str:
    return app.query_one("#item-detail", Static).content.plain


async def test_protect_an_azure_vm_see_its_resources_fail_over_commit_and_reprotect(a2a):
    lab = a2a
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        table = app.query_one("#protected").table
        assert table.base_title == "Regions and their VMs"
        await filter_to(pilot, "WEB01")
        assert "not enabled · protect replicates it to West US (the paired region)" in detail(app)

        # e: the Azure dialog, the paired region chosen, the resources blank (Site Recovery makes them)
        await keys(pilot, "e")
        dialog = app.screen
        assert isinstance(dialog, ProtectDialog) and dialog.azure
        assert dialog.query_one("#az-region", Select).value == "West US"
        assert dialog.query_one("#az-group", Select).value == Select.NULL
        groups = [v for _, v in dialog.resource_options("resource group")]
        assert "DR-Drills" in groups  # the target region's own, to pick instead
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ProtectDialog)
        await keys(pilot, "t")  # +15 min: enabled, initial replication done, batches flowing
        v = vm(lab, "WEB01")
        assert v["protection"] == Protection.PROTECTED

        # its details: both regions, the resources (created ones marked *), the cache
        text = detail(app)
        assert "Replication East US → West US · cache eastusasrcache: " in text
        assert "West US: group ContosoRG-asr* · network ContosoVNet-asr*/Web · storage contosostorageasr*" in text
        assert "East US: group ContosoRG · network ContosoVNet/Web · storage contosostorage" in text
        assert "* for WEB01: West US: group ContosoRG-asr, network ContosoVNet-asr, storage contosostorageasr" in text
        assert "cache eastusasrcache" in text

        # the region's row: its pair, its policy, the cache's waiting bytes
        await keys(pilot, "slash", "escape")
        table.move_cursor(row=table.get_row_index("cloud:East US"), animate=False)
        await settle(pilot)
        text = detail(app)
        assert "East US · paired with West US" in text
        assert "24-hour-retention-policy · → West US · continuous" in text
        assert "eastusasrcache: " in text and "waiting from 1 VM(s)" in text

        # Resources: each region, what was created for whom
        await keys(pilot, "3")
        res = app.query_one("#resources").table
        assert res.base_title.startswith("Regions and their resources")
        row = [c.plain if hasattr(c, "plain") else str(c) for c in
               res.get_row("azure:West US/resource group/ContosoRG-asr")]
        assert row[2] == "created for WEB01" and "used by WEB01" in row[3]
        row = [c.plain if hasattr(c, "plain") else str(c) for c in res.get_row("azure:West US/resource group/DR-Drills")]
        assert row[2] == "in the site"
        cache = [c.plain if hasattr(c, "plain") else str(c) for c in
                 res.get_row("azure:East US/storage account/eastusasrcache")]
        assert "cache storage account" in cache[3]

        # planned failover: greyed, and trying it says the rules table's reason
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        reason = lab.allowed("planned_failover", "WEB01")
        assert reason
        assert ("F", "Planned", False) in app.query_one("#keybar").groups()
        await keys(pilot, "F")
        assert not isinstance(app.screen, FailoverDialog) and app.last_refusal == reason

        # U: unplanned failover to an older point, into the target region
        await keys(pilot, "t")
        older = sorted(lab.points("WEB01"), key=lambda p: p["time"])[0]
        await keys(pilot, "U")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog)
        assert "East US → West US" in dialog.query_one("#direction", Static).content.plain
        points = dialog.query_one("#points")
        assert points.get_row("latest")[0].plain == "latest (cache first)"
        points.move_cursor(row=points.get_row_index(str(older["id"])), animate=False)
        # lab time passes with the dialog open (a +1h still running): new points join it, the cursor stays
        app.engine_call("run", lambda lab: lab.run(600))
        await settle(pilot)
        newest = max(lab.points("WEB01"), key=lambda p: p["time"])
        assert str(newest["id"]) in points.row_keys and points.cursor_key == str(older["id"])
        await keys(pilot, "ctrl+s")
        await keys(pilot, "t")
        v = vm(lab, "WEB01")
        assert v["failover_state"] == Failover.COMMIT_PENDING and v["active_location"] == "West US"
        assert v["recovered"][0]["point"] == older["id"]
        assert "group ContosoRG-asr" in detail(app) and "av set WebAvSet-asr" in detail(app)

        # C: commit; R: reprotect (West US -> East US), a resync sends only what differs
        await keys(pilot, "C")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "ctrl+s", "t")
        assert vm(lab, "WEB01")["failover_state"] == Failover.COMMITTED
        await keys(pilot, "R")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog)
        assert "replication West US → East US" in " ".join(str(s.content) for s in dialog.query(Static))
        await keys(pilot, "ctrl+s", "t", "t")
        v = vm(lab, "WEB01")
        assert v["azure"]["from"] == "West US" and v["azure"]["to"] == "East US"
        assert v["protection"] == Protection.PROTECTED
        assert "Replication West US → East US" in detail(app)
    assert lab.verify("WEB01")["identical"]


@pytest.fixture(scope="module")
def snap_a2a(tmp_path_factory):
    """Two Azure VMs protected for an hour, one failed over (test), for the snapshots."""
    with shared_folder(tmp_path_factory, "a2a") as d:
        lab = Lab.create(d / "lab", small_a2a_site(d))
        lab.run_until_done(lab.protect(["WEB01", "SQL01"]))
        lab.run(3600)
        yield lab
        lab.close()


@pytest.mark.parametrize("panel", ["2", "3"])
def test_azure_panels(snap_compare, snap_a2a, panel):
    app = make_app(snap_a2a)
    assert snap_compare(app, press=[panel], terminal_size=(120, 40), run_before=settle)

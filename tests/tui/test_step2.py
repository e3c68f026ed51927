"""Seed 004, STEP 2, driven through the keyboard only on the sample lab (80x24).

Register SC01, install the agent on HV01, configure protection for "OnPremise Cloud" to Azure
with storage account mysiterecovery (a wrong account first: the engine's refusal shows inline),
map "VirtualSwitch - FrontEnd" to "AzureNetwork", enable protection on MYWSV01, advance lab time,
and see MYWSV01 reach "protected" with recovery points."""

from __future__ import annotations

from tui.dialogs import CloudProtectionDialog, ConfirmDialog, MapNetworkDialog, ProtectDialog, VmDetailScreen
from textual.widgets import Select

from .helpers import filter_to, keys, make_app, settle, type_text


def cell(table, row_key: str, col: str) -> str:
    return table.get_cell(row_key, col).plain


def job_states(app) -> dict[str, str]:
    return {j["name"]: j["state"] for j in app.state.jobs}


async def test_step2_by_keyboard(sample_lab):
    app = make_app(sample_lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        res = app.query_one("#resources-table")

        # -- register the VMM server SC01 (a job with steps; lab time finishes it) --------------
        await keys(pilot, "3")
        await filter_to(pilot, "SC01")
        assert cell(res, "server:SC01", "state") == "not registered"
        await keys(pilot, "r")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "enter")
        assert not isinstance(app.screen, ConfirmDialog)
        [register] = [j for j in app.state.jobs if j["target"] == "SC01"]
        assert register["state"] == "in progress"
        await keys(pilot, "t")  # advance 15 minutes
        assert cell(res, "server:SC01", "state") == "registered"
        assert [j["state"] for j in app.state.jobs if j["target"] == "SC01"] == ["succeeded"]

        # -- install the Recovery Services agent on HV01 ---------------------------------------
        await keys(pilot, "escape")  # clears the filter
        await filter_to(pilot, "HV01")
        await keys(pilot, "i", "enter", "t")
        assert cell(res, "host:HV01", "state") == "agent installed"

        # -- configure cloud protection through the form ---------------------------------------
        await keys(pilot, "escape")
        await filter_to(pilot, "OnPremise Cloud")
        await keys(pilot, "c")
        form = app.screen
        assert isinstance(form, CloudProtectionDialog)
        assert form.query_one("#target", Select).value == "azure"
        # a locally redundant account first: the engine refuses, the form shows why and stays
        await keys(pilot, "tab")  # storage account
        assert app.focused.id == "storage"
        await keys(pilot, "enter", "down", "enter")
        assert form.query_one("#storage", Select).value == "mylocalstore"
        await keys(pilot, "tab", "tab")  # frequency (5 minutes), retention
        assert app.focused.id == "retention"
        await type_text(pilot, "2")
        await keys(pilot, "tab")
        assert app.focused.id == "app"
        await type_text(pilot, "1")
        await keys(pilot, "ctrl+s")
        assert app.screen is form, "a refused form stays open"
        assert form.error is not None and "geo" in form.error.plain
        # now the geo-redundant mysiterecovery
        await keys(pilot, "shift+tab", "shift+tab", "shift+tab")
        assert app.focused.id == "storage"
        await keys(pilot, "enter", "up", "enter")
        assert form.query_one("#storage", Select).value == "mysiterecovery"
        await keys(pilot, "ctrl+s")
        assert app.screen is not form
        await keys(pilot, "t")
        cloud = next(c for c in app.state.resources["clouds"] if c["name"] == "OnPremise Cloud")
        assert cloud["protection"]["storage_account"] == "mysiterecovery"
        assert cloud["protection"]["retention_h"] == 2
        assert cloud["protection"]["app_consistent_h"] == 1
        assert cell(res, "cloud:OnPremise Cloud", "state") == "protection configured"

        # -- map the VM network to the Azure network -------------------------------------------
        await keys(pilot, "escape")
        await filter_to(pilot, "FrontEnd")
        await keys(pilot, "m")
        assert isinstance(app.screen, MapNetworkDialog)
        assert app.focused.id == "target"  # the first field; AzureNetwork is chosen already
        await keys(pilot, "ctrl+s")
        assert app.state.resources["mappings"] == [{"source": "VirtualSwitch - FrontEnd", "target": "AzureNetwork"}]
        assert cell(res, "network:VirtualSwitch - FrontEnd", "state") == "→ AzureNetwork"

        # -- enable protection on MYWSV01 -------------------------------------------------------
        await keys(pilot, "2")
        items = app.query_one("#items")
        await filter_to(pilot, "MYWSV01")
        assert items.cursor_key == "vm:MYWSV01"
        await keys(pilot, "e")
        assert isinstance(app.screen, ProtectDialog)
        assert app.focused.id == "target-name"  # the first field: what is typed goes there
        await keys(pilot, "enter")
        assert not isinstance(app.screen, ProtectDialog)
        assert any("Enable protection" in j["name"] and j["target"] == "MYWSV01" for j in app.state.jobs)
        assert cell(items, "vm:MYWSV01", "status") != "not protected"

        # -- advance lab time until it is protected, with recovery points -----------------------
        for _ in range(4):
            kinds = {p["kind"] for p in app.state.points.get("MYWSV01", [])}
            if app.state.vm("MYWSV01")["protection"] == "protected" and "app-consistent" in kinds:
                break
            await keys(pilot, "T")  # advance 1 hour
        vm = app.state.vm("MYWSV01")
        assert vm["protection"] == "protected"
        assert cell(items, "vm:MYWSV01", "status") == "protected"
        assert cell(items, "vm:MYWSV01", "health") == "OK"
        assert cell(items, "vm:MYWSV01", "failover") == vm["failover_state"] != ""
        assert cell(items, "vm:MYWSV01", "rpo") != ""
        points = app.state.points["MYWSV01"]
        assert len(points) >= 2
        assert {"crash-consistent", "app-consistent"} <= {p["kind"] for p in points}
        detail = app.query_one("#item-detail").render()
        assert "Points" in str(detail)
        # Finalize protection followed Enable protection
        assert any("Finalize protection" in j["name"] and j["state"] == "succeeded" for j in app.state.jobs)

        # -- enter: the VM's details with every recovery point; esc goes back ------------------
        await keys(pilot, "enter")
        assert isinstance(app.screen, VmDetailScreen)
        table = app.screen.query_one("#vm-points")
        assert table.row_count == len(points)
        await keys(pilot, "escape")
        assert not isinstance(app.screen, VmDetailScreen)

        # -- the jobs panel shows the Enable protection job's steps ----------------------------
        await keys(pilot, "4")
        await filter_to(pilot, "Enable protection")
        steps = app.query_one("#steps-table")
        assert "Enable protection" in steps.base_title
        assert steps.row_count >= 4
        assert all(cell(steps, k, "state") == "succeeded" for k in steps.row_keys)

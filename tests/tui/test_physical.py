"""Physical servers -> Azure (seed 003) in the app, by keyboard: Resources shows the configuration
server, its process servers (cache, ports), master targets, each server's mobility service and the
process server it sends to, the policies, the region and the VMware site failback goes to; its
keys register the configuration server, push or install the mobility service, create and
associate a policy, deploy and remove a process server in Azure, each greyed with the engine's
reason. The protect dialog asks for the policy, the process server and a group; reprotect of a
server in Azure asks for the process server in Azure, the master target and the datastore;
planned failover says why not; port-blocked faults name the ports. The lab clock is frozen:
lab time moves only with t / T."""

from __future__ import annotations

import pytest
from textual.screen import ModalScreen
from textual.widgets import Input, Select, Static

from engine import Failover, Lab, Protection
from tests.conftest import shared_folder
from tests.engine.test_physical import small_physical_site
from tui.dialogs import (AssociatePolicyDialog, ConfirmDialog, CreatePolicyDialog, DeployProcessServerDialog,
                         FailoverDialog, FaultDialog, PhysicalReprotectDialog, ProtectDialog)

from .helpers import filter_to, keys, make_app, settle, type_text


@pytest.fixture
def physical(tmp_path):
    lab = Lab.create(tmp_path / "lab", small_physical_site(tmp_path))
    yield lab
    lab.close()


def done(lab: Lab, ids: list[int]) -> None:
    lab.run_until_done(ids)
    assert all(lab.job(i)["state"] == "succeeded" for i in ids), [lab.job(i) for i in ids]


def set_up(lab: Lab) -> None:
    """Through the engine: CS01 registered, the mobility service on every server (pushed on WEB01
    and APP01, by hand on SQL01 and SQL02), policy Gold associated with CS01."""
    done(lab, [lab.register_server("CS01")])
    done(lab, lab.install_mobility(["WEB01", "APP01"], push=True) + lab.install_mobility(["SQL01", "SQL02"]))
    lab.create_policy("Gold")
    lab.associate_policy("Gold", "CS01")


def cells(app, key: str) -> list[str]:
    return [c.plain for c in app.query_one("#resources-table").get_row(key)]


def detail(app) -> str:
    return app.query_one("#res-detail", Static).content.plain


def server(lab: Lab, name: str) -> dict:
    return next(s for s in lab.components()[0]["servers"] if s["name"] == name)


def vm(lab: Lab, name: str) -> dict:
    return next(v for v in lab.status()["vms"] if v["name"] == name)


def keybar(app) -> list[tuple[str, str, bool]]:
    return app.query_one("#keybar").groups()


async def test_set_up_the_configuration_server_mobility_and_policy_from_resources(physical):
    lab = physical
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        assert cells(app, "server:CS01")[2] == "not registered"
        assert cells(app, "ps:PS02")[2] == "not installed yet"  # registration installs them
        assert cells(app, "vm:WEB01")[2] == "no mobility service"
        assert cells(app, "policy:")[1] == "none yet"
        assert cells(app, "region:Japan East")[2] == "vault region"
        assert cells(app, "vmware:Contoso vSphere")[2] == "vCenter VC01"
        assert cells(app, "esxi:Contoso vSphere/ESX01")[3] == "datastore1, datastore2"
        # the VMM site's keys are not offered (nothing to act on); the physical ones are
        groups = keybar(app)
        assert ("i", "Agent", False) not in groups and ("c", "Configure", False) not in groups
        assert ("M", "Push", False) in groups and ("r", "Register", True) in groups

        # M before the configuration server is registered: greyed, the engine's reason when pressed
        await filter_to(pilot, "WEB01")
        await keys(pilot, "M")
        assert not isinstance(app.screen, ModalScreen)
        assert app.last_refusal == lab.allowed("push_mobility", "WEB01")
        assert "CS01 is not registered" in app.last_refusal

        # r on any row registers the configuration server (a job)
        await keys(pilot, "r")
        dialog = app.screen
        assert isinstance(dialog, ConfirmDialog) and dialog.title_text == "Register configuration server"
        await keys(pilot, "ctrl+s", "t", "escape")
        assert cells(app, "server:CS01")[2] == "registered"
        assert "keys/CS01-DataEncryptionCertificate.key" in cells(app, "server:CS01")[3]
        assert cells(app, "ps:PS02")[2] == "0 B of 32 MiB"

        # M pushes the mobility service to WEB01; I installs it by hand on SQL01
        await filter_to(pilot, "WEB01")
        await keys(pilot, "M")
        assert isinstance(app.screen, ConfirmDialog) and "CONTOSO\\asr-push" in " ".join(
            str(s.content) for s in app.screen.query(Static))
        await keys(pilot, "ctrl+s")
        await keys(pilot, "escape")
        await filter_to(pilot, "SQL01")
        await keys(pilot, "I", "ctrl+s", "escape", "t")
        assert (server(lab, "WEB01")["mobility"], server(lab, "WEB01")["method"]) == ("installed", "push")
        assert (server(lab, "SQL01")["mobility"], server(lab, "SQL01")["method"]) == ("installed", "manual")
        assert cells(app, "vm:WEB01")[2] == "mobility (push)"
        assert cells(app, "vm:SQL01")[2] == "mobility (manual)"
        assert cells(app, "vm:APP01")[2] == "no mobility service"

        # a before any policy: the engine allows the configuration server, the app has none to offer
        assert app.panel("resources").disabled_reason("associate_policy") == \
            "no replication policy to associate: create one first (n)"

        # n: a policy; the engine's refusal stays in the form until the values are right
        await keys(pilot, "n")
        dialog = app.screen
        assert isinstance(dialog, CreatePolicyDialog)
        await type_text(pilot, "Gold")
        await keys(pilot, "tab")
        await type_text(pilot, "100")
        await keys(pilot, "ctrl+s")
        assert app.screen is dialog and "retention must be 0-72 hours" in dialog.error.plain
        await keys(pilot, "backspace", "backspace", "backspace")
        await type_text(pilot, "12")
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        assert {(p["name"], p["kind"], p["retention_h"]) for p in lab.policies()} == {
            ("Gold", "replication", 12), ("Gold-failback", "failback", 12)}
        assert cells(app, "policy:Gold")[2] == "not associated"

        # a: associate it with the configuration server (from any row: its one subject)
        await keys(pilot, "a")
        dialog = app.screen
        assert isinstance(dialog, AssociatePolicyDialog) and dialog.server == "CS01"
        assert dialog.query_one("#policy", Select).value == "Gold"
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        assert {p["server"] for p in lab.policies()} == {"CS01"}
        assert cells(app, "policy:Gold")[2] == "→ CS01"
        assert "policy Gold" in cells(app, "server:CS01")[3]
        # associated: a is greyed with the engine's reason
        assert app.panel("resources").disabled_reason("associate_policy") == lab.allowed("associate_policy", "CS01")

        # the configuration server's detail: registration, the management port, the policy
        await keys(pilot, "escape")
        table = app.query_one("#resources-table")
        table.move_cursor(row=table.get_row_index("server:CS01"), animate=False)
        await settle(pilot)
        text = detail(app)
        assert "CS01 of Contoso DC · registered" in text
        assert "443 in open" in text and "Gold · keep 12 h · app-consistent every 1 h" in text


async def test_protect_a_physical_server_through_a_process_server_in_a_group(physical):
    lab = physical
    set_up(lab)
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "SQL01")
        await keys(pilot, "e")
        dialog = app.screen
        assert isinstance(dialog, ProtectDialog) and dialog.physical
        # the policy: the configuration server's; the process servers: the site's, its default first
        assert dialog.query_one("#ph-policy", Select).value == "Gold"
        ps = dialog.query_one("#ph-ps", Select)
        assert ps.value == "CS01"
        # tab to the process server, open it, pick PS02; tab to the group and name it
        await keys(pilot, "tab", "enter", "down", "enter")
        assert ps.value == "PS02"
        await keys(pilot, "tab")
        await type_text(pilot, "SQLGroup")
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        await keys(pilot, "t")
        assert vm(lab, "SQL01")["protection"] != Protection.NOT_PROTECTED
        assert server(lab, "SQL01")["process_server"] == "PS02"
        assert lab.db.execute("SELECT name FROM replication_groups WHERE vm='SQL01'").fetchone()[0] == "SQLGroup"

        # WEB01 with the defaults; then its details say where its data goes
        await filter_to(pilot, "WEB01")
        await keys(pilot, "e", "ctrl+s", "T")
        assert server(lab, "WEB01")["process_server"] == "CS01"
        text = app.query_one("#item-detail", Static).content.plain
        assert "physical server of Contoso DC" in text and "mobility installed (push) → CS01" in text
        assert "Data path   CS01 → physrecovery" in text
        # the site's row: its configuration server's policy
        items = app.query_one("#items")
        assert items.get_cell("cloud:Contoso DC", "failover").plain == "→ Azure · Gold"
        # the dashboard's RPO chart: per configuration server, the physical servers' container
        assert app.state.rpo_history.get("CS01")

        # planned failover: greyed, and pressing it says the engine's reason
        reason = lab.allowed("planned_failover", "WEB01")
        assert "not supported for physical servers" in reason
        assert ("F", "Planned", False) in keybar(app)
        await keys(pilot, "F")
        assert not isinstance(app.screen, FailoverDialog) and app.last_refusal == reason
        # the failover dialog offers it greyed with the same words
        await keys(pilot, "U")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.reasons["planned"] == reason
        await keys(pilot, "escape")

        # Resources: the servers' process servers, and the path through PS02
        await keys(pilot, "3")
        assert cells(app, "vm:SQL01")[3].startswith("→ PS02 · protected")
        table = app.query_one("#resources-table")
        table.move_cursor(row=table.get_row_index("ps:PS02"), animate=False)
        await settle(pilot)
        text = detail(app)
        assert "PS02 on its own server · serves SQL01" in text
        assert ("mobility service → PS02 (9443 in) → its cache (LZ4 + AES-GCM) → 443 out → Azure storage "
                "physrecovery") in text


async def test_a_recovery_plan_of_physical_servers_goes_from_their_configuration_server(physical):
    lab = physical
    set_up(lab)
    done(lab, lab.protect(["WEB01", "APP01"], policy="Gold"))
    app = make_app(lab)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await keys(pilot, "5", "n")
        await type_text(pilot, "Web")
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        assert [(p["name"], p["source"], p["target"], p["groups"][0]["vms"]) for p in lab.plans()] == [
            ("Web", "CS01", "Japan East", ["APP01", "WEB01"])]


async def test_a_blocked_port_from_the_faults_panel_shows_on_its_process_server(physical):
    lab = physical
    set_up(lab)
    done(lab, lab.protect(["SQL01", "SQL02"], policy="Gold", process_server="PS02", group="SQLGroup"))
    lab.run(10 * 60)
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "7")
        await filter_to(pilot, "port-blocked")
        await keys(pilot, "i")
        dialog = app.screen
        assert isinstance(dialog, FaultDialog)
        # the ports (a port needs naming: no "everything"), what goes through the one chosen
        assert [v for _label, v in dialog.targets] == list(lab.ports())
        await keys(pilot, "enter", *["down"] * list(lab.ports()).index("PS02:443-out"), "enter")
        assert dialog.query_one("#target", Select).value == "PS02:443-out"
        assert dialog.query_one("#port-note", Static).content.plain == \
            f"through it: {lab.ports()['PS02:443-out']}"
        await keys(pilot, "ctrl+s")
        assert [(f["kind"], f["target"]) for f in lab.faults()] == [("port-blocked", "PS02:443-out")]
        await keys(pilot, "t")
        await keys(pilot, "3")
        assert cells(app, "ps:PS02")[3].startswith("blocked 443-out · own server")
        table = app.query_one("#resources-table")
        table.move_cursor(row=table.get_row_index("ps:PS02"), animate=False)
        await settle(pilot)
        text = detail(app)
        assert "Blocked     PS02:443-out: process server PS02 to Azure storage and the vault" in text
        assert "443 out BLOCKED → Azure storage" in text
        waiting = next(p for p in lab.components()[0]["process_servers"] if p["name"] == "PS02")
        assert waiting["shipments"] > 0 and f"{waiting['shipments']} waiting" in text


async def test_fail_back_to_vmware_deploy_reprotect_fail_over_commit_remove(physical):
    lab = physical
    set_up(lab)
    done(lab, lab.protect(["WEB01"], policy="Gold"))
    lab.run(20 * 60)
    done(lab, lab.failover(["WEB01"], "unplanned"))
    done(lab, lab.commit(["WEB01"]))
    app = make_app(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        # reprotect needs a process server in Azure first: greyed with the engine's reason
        reason = lab.allowed("reprotect", "WEB01")
        assert "deploy the process server first" in reason
        await keys(pilot, "R")
        assert not isinstance(app.screen, ModalScreen) and app.last_refusal == reason

        # Resources: d on the region deploys one (its name proposed), x is greyed until there is one
        await keys(pilot, "3")
        assert app.panel("resources").disabled_reason("remove_process_server").startswith("no process server in Azure")
        await filter_to(pilot, "Japan East")
        assert "Process srv none in Azure: d deploys one" in detail(app)
        await keys(pilot, "d")
        dialog = app.screen
        assert isinstance(dialog, DeployProcessServerDialog)
        assert dialog.query_one("#ps-name", Input).value == "PSAZ01"
        await keys(pilot, "ctrl+s", "escape", "t")
        assert cells(app, "process server:PSAZ01")[2] == "in Azure (failback)"
        assert "registered with CS01" in cells(app, "process server:PSAZ01")[3]
        assert app.panel("resources").disabled_reason("remove_process_server") is None

        # R: the process server in Azure, a master target, a datastore (the engine's defaults shown)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "R")
        dialog = app.screen
        assert isinstance(dialog, PhysicalReprotectDialog)
        assert "Microsoft Azure (Japan East) → Contoso vSphere (a VMware VM)" in \
            dialog.query_one("#direction", Static).content.plain
        assert dialog.query_one("#rp-ps", Select).value == "PSAZ01"
        assert dialog.query_one("#rp-mt", Select).value == Select.NULL  # blank: the configuration server's
        assert app.focused.id == "ok"  # enter takes the defaults; the fields are above
        await keys(pilot, "shift+tab", "shift+tab", "enter", "down", "down", "enter")  # MT01
        await keys(pilot, "tab", "enter", "down", "down", "enter")  # datastore2
        assert dialog.query_one("#rp-mt", Select).value == "MT01"
        assert dialog.query_one("#rp-ds", Select).value == "datastore2"
        await keys(pilot, "ctrl+s")
        assert not isinstance(app.screen, ModalScreen)
        await keys(pilot, "T")
        v = vm(lab, "WEB01")
        assert v["path"]["to"] == "Contoso vSphere (datastore2)" and v["protection"] == Protection.PROTECTED
        # x now refuses: the process server carries WEB01's failback
        assert "carries the failback of WEB01" in app.panel("resources").disabled_reason("remove_process_server")
        # Resources: its row says it fails back (components' failing_back), its path is status's failback path
        await keys(pilot, "3")
        assert cells(app, "vm:WEB01")[2] == "failing back"
        assert cells(app, "vm:WEB01")[3].startswith("through Azure to VMware · ")
        assert "→ PSAZ01 (Azure) → VPN → master target MT01 → Contoso vSphere (ESX01, datastore2)" in \
            app.panel("resources").physical_detail("vm", "WEB01").plain
        await keys(pilot, "2")

        # U fails it over to the VMware VM from a point; C commits the failback
        await keys(pilot, "U")
        dialog = app.screen
        assert isinstance(dialog, FailoverDialog) and dialog.to_vmware == "Contoso vSphere (datastore2)"
        assert dialog.query_one("#direction", Static).content.plain == \
            "Microsoft Azure → Contoso vSphere (datastore2), a VMware VM"
        assert dialog.query_one("#points").display
        await keys(pilot, "ctrl+s", "t")
        assert vm(lab, "WEB01")["failover_state"] == Failover.COMMIT_PENDING
        await keys(pilot, "C")
        assert "runs as a VMware VM on Contoso vSphere" in " ".join(
            str(s.content) for s in app.screen.query(Static))
        await keys(pilot, "ctrl+s", "t")
        v = vm(lab, "WEB01")
        assert (v["protection"], v["active_location"]) == (Protection.NOT_PROTECTED, "Contoso vSphere")
        assert "VMware VM on Contoso vSphere" in app.query_one("#item-detail", Static).content.plain

        # x removes the process server in Azure
        await keys(pilot, "3")
        await keys(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        await keys(pilot, "ctrl+s")
        assert "process server:PSAZ01" not in app.query_one("#resources-table").row_keys


async def test_a_lab_without_physical_servers_offers_none_of_their_keys(sample_lab):
    app = make_app(sample_lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        labels = [label for _k, label, _on in keybar(app)]
        assert "Register" in labels and "Push" not in labels and "Deploy PS" not in labels
        await keys(pilot, "M")
        assert not isinstance(app.screen, ModalScreen)
        assert app.last_refusal == "this lab has no physical servers (seed 003)"


# ---- snapshots (frozen lab clock) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def snap_physical(tmp_path_factory):
    """The small physical site: WEB01 and APP01 protected through CS01, SQL01 through PS02, for
    half an hour; SQL02 has its mobility service, not yet protected."""
    with shared_folder(tmp_path_factory, "physical") as d:
        lab = Lab.create(d / "lab", small_physical_site(d))
        set_up(lab)
        done(lab, lab.protect(["WEB01", "APP01"], policy="Gold")
             + lab.protect(["SQL01"], policy="Gold", process_server="PS02", group="SQLGroup"))
        lab.run(30 * 60)
        yield lab
        lab.close()


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_physical_resources_snapshot(snap_compare, snap_physical, size):
    app = make_app(snap_physical)
    assert snap_compare(app, press=["3", "down", "down"], terminal_size=size, run_before=settle)


def test_physical_protect_dialog_snapshot(snap_compare, snap_physical):
    app = make_app(snap_physical)
    assert snap_compare(app, press=["2", "slash", *"SQL02", "enter", "e"], terminal_size=(80, 24),
                        run_before=settle)

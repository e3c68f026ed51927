"""The command line as a user meets it: output, exit codes, no tracebacks."""

import json

import pytest
from click.testing import CliRunner

from tui.cli import main


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, ["--lab", str(tmp_path / "lab"), *args])
        assert "Traceback" not in result.output
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_init_status_run_json(cli, small_site):
    out = cli("init", "--site", str(small_site))
    assert "created lab" in out
    st = json.loads(cli("status", "--json"))
    assert [v["name"] for v in st["vms"]] == ["WEB01", "IDLE01"]
    web = st["vms"][0]
    assert web["protection"] == "not protected"
    assert web["site"] == "SC01" and web["cloud"] == "OnPremise Cloud"
    assert {"path", "logical_bytes", "allocated_bytes"} <= set(web["disks"][0])
    out = cli("run", "--for", "15m")
    assert "09:00:00 -> 2026-01-05 09:15:00" in out
    assert json.loads(cli("status", "--json"))["now_text"] == "2026-01-05 09:15:00"
    assert "WEB01" in cli("status")


def test_vm_power_commands(cli, small_site):
    cli("init", "--site", str(small_site))
    assert "IDLE01: running" in cli("vm", "start", "IDLE01")
    out = cli("vm", "start", "IDLE01", code=1)
    assert "already running" in out
    assert "IDLE01: off" in cli("vm", "shutdown", "idle01")
    assert "no VM named 'ZZZ'" in cli("vm", "stop", "ZZZ", code=2)


def test_user_errors_have_messages_and_codes(cli, small_site, tmp_path):
    assert "no lab at" in cli("status", code=1)
    bad = tmp_path / "bad.toml"
    bad.write_text("[lab]\nname = 'x'\nscenario = 'nope'\n")
    out = cli("init", "--site", str(bad), code=2)
    assert "lab.scenario: must be one of" in out and "lab.start: missing" in out
    assert not (tmp_path / "lab").exists()
    cli("init", "--site", str(small_site))
    assert "already exists" in cli("init", "--site", str(small_site), code=1)
    cli("init", "--site", str(small_site), "--force")
    assert "bad duration" in cli("run", "--for", "soon", code=2)
    assert "Missing option '--for'" in cli("run", code=2)


def test_step2_walkthrough_from_the_readme(cli, small_site, tmp_path):
    cli("init", "--site", str(small_site))
    assert "Register server): succeeded" in cli("server", "register", "SC01")
    assert "succeeded" in cli("agent", "install", "HV01")
    out = cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account", "mysiterecovery",
              "--frequency", "5m", "--retention", "2", "--app-consistent", "1")
    assert "(Configure protection): succeeded" in out
    assert "mapped" in cli("network", "map", "VirtualSwitch - FrontEnd", "AzureNetwork")
    out = cli("protect", "WEB01")
    assert "(Enable protection): succeeded" in out and "size M" in out
    cli("run", "--for", "30m")
    st = json.loads(cli("status", "--json"))["vms"][0]
    assert st["protection"] == "protected" and st["failover_state"] == "Ready"
    pts = json.loads(cli("points", "WEB01", "--json"))
    assert len(pts) >= 5 and {"id", "time", "kind", "size"} <= set(pts[0])
    assert "crash-consistent" in cli("points", "WEB01")
    assert "identical" in cli("verify", "WEB01", "--point", str(pts[0]["id"]))
    assert json.loads(cli("verify", "WEB01", "--json"))["identical"] is True
    out = cli("export", "WEB01", "--point", "latest", "--out", str(tmp_path / "exp"))
    assert (tmp_path / "exp" / "WEB01.vhd").is_file()
    jobs = json.loads(cli("jobs", "--json"))
    assert {j["state"] for j in jobs} == {"succeeded"}
    detail = json.loads(cli("job", str(jobs[-1]["id"]), "--json"))
    assert detail["steps"][0]["name"] == "Validate the vault registration key"
    assert "Enable protection operations" in cli("job", str(next(j["id"] for j in jobs if j["kind"] == "enable_protection")))
    assert "mysiterecovery" in cli("resources")
    assert "5 Mbps, lossy" in cli("link", "set", "--mbps", "5", "--state", "lossy")
    assert "OnPremise Cloud -> Japan East: 5 Mbps" in cli("resources")


def test_refusals_on_the_command_line(cli, small_site):
    cli("init", "--site", str(small_site))
    out = cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account", "localonly", code=1)
    assert "SC01 is not registered" in out and "must be geo-redundant" in out
    assert "not configured for protection" in cli("protect", "WEB01", code=1)
    assert "no recovery points yet" in cli("verify", "WEB01", code=1)
    assert "no job 99" in cli("job", "99", code=2)
    assert "no job 99" in cli("complete", "99", code=2)
    cli("server", "register", "SC01")
    assert "only a job waiting for action can be completed" in cli("complete", "1", code=1)
    assert "Invalid value for '--state'" in cli("link", "set", "--state", "broken", code=2)


def test_status_columns_follow_the_content(cli, tmp_path):
    """A long status ("initial replication pending (starts ...)") or a site name longer than six
    characters widens its column; the columns after it never shift from row to row."""
    from tests.conftest import SMALL_SITE

    site = tmp_path / "long.toml"
    site.write_text(SMALL_SITE.replace('"SC01"', '"SC01-PRIMARY-DATACENTER"'))
    cli("init", "--site", str(site))
    cli("server", "register", "SC01-PRIMARY-DATACENTER")
    cli("agent", "install", "HV01")
    cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account", "mysiterecovery",
        "--start", "23:30")
    cli("protect", "WEB01")
    out = cli("status").splitlines()
    header = out[1]
    rows = [line for line in out[2:] if line.startswith(("WEB01", "IDLE01"))]
    web = next(r for r in rows if r.startswith("WEB01"))
    assert "initial replication pending (starts" in web
    for col in ("site", "active location", "power", "replication status", "health", "failover", "size"):
        at = header.index(col)
        for row in rows:
            assert row[at - 1] == " " and row[at] != " ", (col, row)  # each value starts under its header
    assert header.index("RPO") + 3 == len(header.split("last replication")[0].rstrip())
    assert json.loads(cli("status", "--json"))["vms"][0]["site"] == "SC01-PRIMARY-DATACENTER"


def test_bad_policy_values_are_bad_input(cli, small_site):
    cli("init", "--site", str(small_site))
    for args in (["--retention", "99"], ["--app-consistent", "13", "--retention", "24"], ["--frequency", "7m"],
                 ["--start", "25:00"], ["--retention", "1", "--app-consistent", "2"]):
        out = cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", *args, code=2)
        assert "cannot configure protection" in out and "nothing was changed" in out, args
    # names the lab does not have are bad input too
    out = cli("cloud", "configure", "OnPremise Cloud", "--target", "nowhere", code=2)
    assert "no cloud named 'nowhere'" in out
    out = cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account", "nope", code=2)
    assert "no storage account named 'nope'" in out
    # a refusal by the lab's rules (the server is not registered) is still exit 1
    out = cli("cloud", "configure", "OnPremise Cloud", "--target", "azure", "--storage-account",
              "mysiterecovery", code=1)
    assert "registered" in out


def test_the_app_runs_the_cli_commands_on_its_open_lab(lab):
    """`:` in the app: the same click commands, on the app's Lab (not opened again, not closed),
    jobs not waited for unless --wait, and the CLI's exit codes and messages."""
    from tui.cli import run_in_app

    code, out, err = run_in_app(lab, "server register SC01")
    assert code == 0 and "in progress" in out and err == ""
    assert lab.jobs()[0]["state"] == "in progress"  # the app's clock runs it
    code, out, err = run_in_app(lab, "server register SC01")
    assert code == 1 and err.startswith("srlab: ")  # refused by the lab's rules
    code, out, err = run_in_app(lab, "run --for 15m")
    assert code == 0 and "09:00:00 -> 2026-01-05 09:15:00" in out
    code, out, err = run_in_app(lab, "run --for soon")
    assert code == 2 and "bad duration" in err
    code, out, err = run_in_app(lab, "agent install HV01 --wait")
    assert code == 0 and "succeeded" in out
    assert run_in_app(lab, "failover 'no such vm' --kind test")[0] == 2
    assert run_in_app(lab, "nonsense")[0] == 2
    assert run_in_app(lab, 'network map "unbalanced')[0] == 2
    code, out, _ = run_in_app(lab, "help")
    assert code == 0 and "Commands:" in out
    code, out, _ = run_in_app(lab, "help failover")
    assert code == 0 and "--kind" in out
    assert lab.status()["name"] == "small"  # still open

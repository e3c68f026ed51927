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


def test_bench_prints_ratios(cli):
    out = cli("bench", "--size-mb", "64", "--content-mb", "16")
    assert "initial replication" in out and "delta replication" in out
    assert "point verified identical" in out
    assert "the lz4 CLI's speed" in out or "lz4 CLI not installed" in out
    assert "rsync's speed" in out or "rsync not installed" in out

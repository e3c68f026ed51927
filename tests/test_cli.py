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

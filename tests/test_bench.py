"""`srlab bench`: every figure by name, refused arguments, a missing reference tool skipped with its
reason. Small and quick; nothing here says anything about speed."""

import json
import shutil

import pytest
from click.testing import CliRunner

from engine import bench
from tui.cli import main

SMALL = ["--size-mb", "32", "--content-mb", "8", "--repeat", "1"]
REPLICATION_KEYS = {"initial_vs_lz4": "lz4", "initial_vs_cp": "cp", "delta_vs_rsync": "rsync",
                    "delta_bytes_vs_rsync": "rsync", "delta_vs_rsync_default": "rsync",
                    "failover_vs_cp": "cp", "resync_vs_rsync": "rsync", "resync_bytes_vs_rsync": "rsync"}
SCALE_KEYS = ["lab_per_wall", "cpu_s_per_vm_hour", "peak_rss_mib"]


@pytest.fixture
def cli(tmp_path):
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, ["--lab", str(tmp_path / "lab"), "bench", *args])
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == code, result.output
        return result.output

    return run


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def test_json_names_every_figure(cli):
    fig = json.loads(cli(*SMALL, "--json"))
    for key, tool in REPLICATION_KEYS.items():
        if shutil.which(tool):
            assert is_number(fig[key]) and fig[key] > 0, key
        else:
            assert fig[key] is None and tool in fig["skipped"][key.replace("_bytes", "")]
    assert fig["repeat"] == 1 and fig["delta_verified"] and fig["resync_verified"]


def test_scale_json_names_every_figure(cli):
    fig = json.loads(cli("--scale", "3", "--hours", "0.1", "--json"))
    assert fig["vms"] == 3 and fig["lab_seconds"] == 360
    for key in SCALE_KEYS:
        assert is_number(fig[key]) and fig[key] > 0, key


def test_a_missing_tool_skips_its_lines_with_the_reason(cli, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None if name in ("lz4", "rsync") else which(name))
    out = cli(*SMALL)
    assert "lz4 not installed: no reference (apt-get install lz4)" in out
    assert out.count("rsync not installed: no reference (apt-get install rsync)") == 3  # delta x2, resync
    assert "point verified identical" in out and "cp --sparse=always" in out  # the rest still runs


@pytest.mark.parametrize("args,message", [
    (["--scale", "0"], "--scale must be 1-5000 VMs, not 0"),
    (["--scale", "-2"], "--scale must be 1-5000 VMs, not -2"),
    (["--repeat", "0"], "--repeat must be 1-50, not 0"),
    (["--repeat", "-1"], "--repeat must be 1-50, not -1"),
    (["--scale", "3", "--hours", "-1"], "--hours must be above 0"),
    (["--scale", "3", "--hours", "0"], "--hours must be above 0"),
    (["--scale", "3", "--rate", "0"], "--rate must be above 0"),
    (["--hours", "1"], "--hours and --rate go with --scale N"),
    (["--scale", "3", "--size-mb", "64"], "--size-mb applies to the replication bench, not to --scale"),
    (["--size-mb", "8"], "--size-mb must be 32-65536, not 8"),
])
def test_bad_arguments_are_refused_with_a_reason(cli, args, message):
    assert message in cli(*args, code=2)


# ---- the pure parts -------------------------------------------------------------------------------


def test_ratio_is_reference_over_srlab_of_the_medians():
    assert bench.median([3.0, 1.0, 2.0]) == 2.0 and bench.median([]) is None
    assert bench.ratio(2.0, 0.5) == 4.0  # srlab 4x faster
    assert bench.ratio(None, 1.0) is None and bench.ratio(1.0, 0) is None


def test_rsync_link_bytes_counts_both_ways():
    stats = "Total bytes sent: 619,621\nTotal bytes received: 458,815\n"
    assert bench.rsync_link_bytes(stats) == 619621 + 458815
    assert bench.rsync_link_bytes("no stats") is None


def synthetic(skip_rsync: bool = False) -> dict:
    srlab, wire = [1.0, 2.0, 9.0], [100, 100, 100]
    lines = [bench.Line("initial", "lz4", "lz4 -1 (the same 8 MiB allocated)", [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]),
             bench.Line("delta", "rsync", "rsync -z", srlab, [4.0, 4.0, 40.0], wire, [300, 300, 300],
                        skipped="rsync not installed: no reference (apt-get install rsync)" if skip_rsync else "")]
    return {"repeat": 3, "logical_bytes": 2**25, "allocated_bytes": 2**23, "changed_bytes": 4096, "writes": 1,
            "delta_verified": True, "resync_verified": True, "lines": lines}


def test_figures_and_text_say_the_same_medians():
    fig = bench.figures(synthetic())
    assert fig["initial_vs_lz4"] == 0.5 and fig["delta_srlab_s"] == 2.0 and fig["delta_rsync_s"] == 4.0
    assert fig["delta_vs_rsync"] == 2.0 and fig["delta_bytes_vs_rsync"] == 3.0 and fig["skipped"] == {}
    text = "\n".join(bench.text(synthetic()))
    assert "srlab 2 s  rsync -z 4 s  ratio 2.00x (median of 3)" in text
    assert "ratio 3.00x" in text and "above 1x: srlab is faster" in text


def test_a_skipped_reference_has_null_figures_and_its_reason():
    fig = bench.figures(synthetic(skip_rsync=True))
    assert fig["delta_vs_rsync"] is None and fig["delta_bytes_vs_rsync"] is None
    assert fig["skipped"] == {"delta_vs_rsync": "rsync not installed: no reference (apt-get install rsync)"}
    assert "rsync -z: rsync not installed" in "\n".join(bench.text(synthetic(skip_rsync=True)))

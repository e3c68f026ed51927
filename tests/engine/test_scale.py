"""The scale site generator (issue 15's measurements): valid, reproducible, refused out of range."""

import pytest

from engine import InvalidInput, Lab
from engine.scale import scale_site
from engine.sites import parse_site


def test_scale_site_is_valid_and_reproducible(tmp_path):
    text = scale_site(12, rate_kib_s=2)
    assert text == scale_site(12, rate_kib_s=2)
    site = parse_site(text, "scale")
    assert len(site.vms) == 12 and {v.workload.rate_kib_s for v in site.vms} == {2}
    (tmp_path / "s.toml").write_text(text)
    with Lab.create(tmp_path / "lab", tmp_path / "s.toml") as lab:
        assert len(lab.status()["vms"]) == 12


@pytest.mark.parametrize("vms,rate", [(0, 1), (5001, 1), (10, 0), (10, 2048)])
def test_scale_site_refuses_out_of_range(vms, rate):
    with pytest.raises(InvalidInput):
        scale_site(vms, rate)


def test_the_workload_writes_the_same_bytes_as_ever():
    """make_write without a generator per write (issue 15) gives the bytes it always gave: labs,
    snapshots and the README's quoted sizes stay as they are."""
    import random

    import xxhash

    from engine import workload

    for h in (0, 7, 2**63 + 5, 2**64 - 1):
        for n in (0, 1, 255, 1020):
            assert workload._randbytes(h, n) == random.Random(h).randbytes(n)
    digest = xxhash.xxh64()
    for vm in parse_site(scale_site(3), "s").vms:
        for n in range(0, 500, 7):
            digest.update(workload.make_write(vm, n, 1000 + n, [d.size_bytes for d in vm.disks]).data)
    assert digest.hexdigest() == "c77fcbb9c8349a00"  # computed with srlab before the change


def protected_scale_lab(tmp_path, vms: int) -> Lab:
    """A scale lab of `vms` VMs, its first three protected to Azure (5-minute copies, 1 h kept)."""
    (tmp_path / "s.toml").write_text(scale_site(vms))
    lab = Lab.create(tmp_path / "lab", tmp_path / "s.toml")
    lab.run_until_done([lab.register_server("SC01")])
    lab.run_until_done([lab.install_agent("HV01")])
    lab.run_until_done([lab.configure_cloud("Scale Cloud", "azure", "scalestore", "5m", 1, 0)])
    lab.run_until_done(lab.protect(["VM0001", "VM0002", "VM0003"]))
    return lab


def test_rpo_sample_is_the_worst_item_rpo(tmp_path):
    """The minute's RPO sample (one query for all items) is the worst RPO `srlab status` shows."""
    with protected_scale_lab(tmp_path, 4) as lab:
        lab.run(2 * 3600 - lab.now % 60)
        worst = max(v["rpo_seconds"] for v in lab.status()["vms"] if v["rpo_seconds"] is not None)
        samples = lab.db.execute("SELECT place, time, rpo FROM rpo_samples ORDER BY time DESC").fetchall()
        assert samples[0] == ("Scale Cloud", lab.now, worst)


def test_the_engine_offers_a_pause_between_vms_in_a_slice(tmp_path):
    """Lab.between_vms is called between the VMs' writes and between the copies of a slice (the
    app holds the engine there while a key is handled)."""
    with protected_scale_lab(tmp_path, 3) as lab:
        lab.run(3600)
        calls = []
        lab.between_vms = lambda: calls.append(lab.now)
        lab.run(600)
        assert len(calls) >= 10 * 3 + 2 * 3  # every VM in each of the 10 slices, and each copy

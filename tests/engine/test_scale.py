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

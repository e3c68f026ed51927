"""Property tests (hypothesis) for issue 12: site files built from the classes of input that broke
srlab — path-like and colliding names, extreme dates, sizes and seeds, non-finite numbers, markup
— and change-log buffers with any single bit flipped. For every one: no traceback, the README's
exit code, no file outside the lab, nothing half-made; and damage is never applied."""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from engine import Damaged, SiteFileError
from engine.model import slug
from engine.replication import changelog
from engine.sites import parse_site
from tui.cli import main

SETTINGS = settings(max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NASTY_NAMES = ["..", ".", "../x", "a/b", "a\\b", "x" * 81, "tab\there", "nul\x00", " lead", "trail ", "[red",
               "[bold]x[/bold]", "MY SQL01", "MY_SQL01", "my sql01", "日本", "中国", "\u202eevil", ".hidden", "-",
               "ok-name", "WEB01", "Web 01"]
names = st.one_of(st.sampled_from(NASTY_NAMES), st.text(min_size=0, max_size=90))
floats = st.one_of(st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -1.0, 1e-9, 1e308]),
                   st.floats(allow_nan=True, allow_infinity=True))
starts = st.one_of(
    st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23), datetime(1969, 12, 31, 23, 59, 59),
                     datetime(2100, 1, 1), datetime(2100, 1, 1, 0, 0, 1), datetime(1970, 1, 1)]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # JSON escapes are TOML basic-string escapes
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, datetime):
        return f"{v.year:04d}-" + v.strftime("%m-%dT%H:%M:%S") + "Z"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def toml(doc: dict) -> str:
    """A site file: [lab], arrays of tables, and their sub-tables (enough for srlab's schema)."""
    out = []

    def table(header: str, t: dict, array: bool) -> None:
        out.append(f"[[{header}]]" if array else f"[{header}]")
        subs = []
        for k, v in t.items():
            if isinstance(v, dict):
                subs.append((k, v, False))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                subs += [(k, x, True) for x in v]
            else:
                out.append(f"{k} = {toml_value(v)}")
        for k, v, arr in subs:
            table(f"{header}.{k}", v, arr)

    for key, value in doc.items():
        for t in (value if isinstance(value, list) else [value]):
            table(key, t, isinstance(value, list))
    return "\n".join(out) + "\n"


# Each site starts valid; a few of its values are then drawn from the classes above.
VALUES = {"cloud": ("Cloud A", names), "vm1": ("VM1", names), "vm2": ("VM2", names), "disk": ("disk0", names),
          "lab_name": ("props", names), "start": (datetime(2026, 1, 5, 9), starts),
          "size": (0.01, st.one_of(floats, st.integers(-10**30, 10**30), st.sampled_from([0.0009765625, 0.001]))),
          "rate": (4.0, st.one_of(floats, st.floats(0, 16))), "seed": (3, st.integers(-2**70, 2**70)),
          "mbps": (100.0, floats), "content": (0.5, st.one_of(floats, st.floats(0, 2)))}


@st.composite
def sites(draw) -> dict:
    how_many = draw(st.sampled_from([0, 0, 1, 1, 2]))
    changed = draw(st.sets(st.sampled_from(sorted(VALUES)), min_size=how_many, max_size=how_many))
    v = {k: draw(strategy) if k in changed else default for k, (default, strategy) in VALUES.items()}

    def vm(name, disk_name, seed):
        return {"name": name, "os": "Windows Server 2012 R2", "cloud": v["cloud"], "host": "HV01", "cpus": 1,
                "memory_mb": 512, "disks": [{"name": disk_name, "role": "os", "controller": "ide",
                                             "size_gb": v["size"], "content_mb": v["content"]}],
                "workload": {"rate_kib_s": v["rate"], "seed": seed}}

    return {"lab": {"name": v["lab_name"], "scenario": "hyperv-to-azure", "start": v["start"]},
            "vmm_servers": [{"name": "SC01", "hosts": [{"name": "HV01"}],
                             "clouds": [{"name": v["cloud"], "hosts": ["HV01"]}]}],
            "azure_subscriptions": [{"name": "sub", "regions": [{"name": "Japan East",
                                                                 "storage_accounts": [{"name": "acct"}]}]}],
            "links": [{"source": v["cloud"], "target": "Japan East", "mbps": v["mbps"]}],
            "vms": [vm(v["vm1"], v["disk"], v["seed"]), vm(v["vm2"], "disk0", 4)]}


def _files(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip}


def _strict_json(text: str):
    def refuse(c):
        raise ValueError(f"not JSON: {c}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("props")


@SETTINGS
@given(doc=sites())
@example(doc=None)  # the first reproduction, below
def test_any_site_file_gives_a_lab_or_a_clear_refusal_and_nothing_outside(work, doc):
    if doc is None:  # a cloud and a VM named '..' with a disk 'ESCAPED'
        doc = {"lab": {"name": "x", "scenario": "hyperv-to-azure", "start": datetime(2026, 1, 5)},
               "vmm_servers": [{"name": "SC01", "hosts": [{"name": "HV01"}], "clouds": [{"name": "..",
                                                                                       "hosts": ["HV01"]}]}],
               "vms": [{"name": "..", "os": "Windows Server 2012 R2", "cloud": "..", "host": "HV01", "cpus": 1,
                        "memory_mb": 512, "disks": [{"name": "ESCAPED", "role": "os", "size_gb": 0.01}]}]}
    root = work / "case"
    shutil.rmtree(root, ignore_errors=True)
    (root / "a").mkdir(parents=True)
    site = root / "site.toml"
    site.write_text(toml(doc))
    lab = root / "a" / "lab"
    runner = CliRunner()

    def cli(*args):
        r = runner.invoke(main, ["--lab", str(lab), *args])
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.output, r.exc_info)
        assert "Traceback" not in r.output
        return r

    r = cli("init", "--site", str(site))
    event(f"init exit {r.exit_code}")
    assert r.exit_code in (0, 2), r.output  # a lab, or a usage error (the file)
    assert _files(root, lab) <= {"site.toml", "a"}, _files(root, lab)  # nothing outside the lab
    if r.exit_code:
        assert "srlab: " in r.output and not lab.exists()  # nothing half-made
        return
    r = cli("run", "--for", "10m")
    assert r.exit_code == 0, r.output
    st_ = _strict_json(cli("status", "--json").output)
    _strict_json(cli("resources", "--json").output)
    assert all(d["path"].startswith(str(lab) + os.sep) for v in st_["vms"] for d in v["disks"])
    assert len({d["path"] for v in st_["vms"] for d in v["disks"]}) == 2  # no two disks share a file
    assert _files(root, lab) <= {"site.toml", "a"}


@SETTINGS
@given(raw=st.recursive(st.one_of(st.integers(-2**70, 2**70), floats, st.text(max_size=20), st.booleans(),
                                  st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(timezone.utc))),
                        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                st.dictionaries(st.sampled_from(["lab", "vms", "name", "disks",
                                                                                 "size_gb", "start", "links",
                                                                                 "mbps", "x"]), inner, max_size=5)),
                        max_leaves=20))
def test_any_document_is_parsed_or_refused_with_its_problems(raw):
    """Whatever the structure, parse_site returns a Site or raises SiteFileError: never anything else."""
    doc = raw if isinstance(raw, dict) else {"lab": raw}
    text = "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())
    try:
        parse_site(text, "t.toml")
    except SiteFileError as e:
        assert e.problems and all(len(p) < 600 for p in e.problems)


@SETTINGS
@given(name=names)
def test_a_name_s_file_name_is_one_safe_component(name):
    s = slug(name)
    assert s and s not in (".", "..") and not s.startswith(".") and "/" not in s and "\\" not in s
    assert len(s) <= 100 and all(c.isascii() and (c.isalnum() or c in "._-") for c in s)


@SETTINGS
@given(writes=st.lists(st.tuples(st.integers(0, (1 << 20) - 4096), st.binary(min_size=0, max_size=300)),
                       min_size=1, max_size=6),
       data=st.data())
def test_a_damaged_log_is_refused_never_applied_differently(writes, data):
    """Any single bit flipped anywhere in a change log, and any cut, is refused (Damaged) or
    changes nothing: what would be applied is exactly what was written."""
    buf = b"".join(changelog.record(o, d) for o, d in writes)
    good = changelog.records(buf, 1 << 20)
    assert good == [(o, d) for o, d in writes]
    bit = data.draw(st.integers(0, len(buf) * 8 - 1))
    flipped = bytearray(buf)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(Damaged):
        changelog.records(bytes(flipped), 1 << 20)
    cut = data.draw(st.integers(1, len(buf) - 1))
    try:
        assert changelog.records(buf[:cut], 1 << 20) == good[: len(changelog.records(buf[:cut], 1 << 20))]
    except Damaged:
        pass
    whole = changelog.complete_length(buf[:cut])  # what a torn log is cut back to
    assert changelog.records(buf[:whole], 1 << 20) == good[: len(changelog.records(buf[:whole], 1 << 20))]

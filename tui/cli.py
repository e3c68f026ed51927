"""The `srlab` command line. Thin: parse, call engine.Lab, print. User mistakes never traceback."""

from __future__ import annotations

import functools
import json
import os
import sys

import click

from engine import Lab, LabError
from engine.clock import format_duration, format_time, parse_duration


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def handle_errors(fn):
    """Turn engine errors into a message on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LabError as e:
            click.echo(f"srlab: {e.message}", err=True)
            if e.hint:
                click.echo(f"  {e.hint}", err=True)
            sys.exit(e.exit_code)

    return wrapper


def _lab_dir(ctx: click.Context) -> str:
    return ctx.find_root().params["lab"]


def open_lab(ctx: click.Context) -> Lab:
    return Lab.open(_lab_dir(ctx))


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lab",
    envvar="SRLAB_LAB",
    default="lab",
    show_default="$SRLAB_LAB or ./lab",
    type=click.Path(file_okay=False),
    help="The lab directory.",
)
@click.pass_context
def main(ctx: click.Context, lab: str) -> None:
    """srlab - Site Recovery Lab: a disaster-recovery lab that moves real bytes.

    With no command, opens the terminal app on the lab.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


@main.command()
@click.option("--site", "site_file", required=True, type=click.Path(dir_okay=False), help="Site file (TOML).")
@click.option("--force", is_flag=True, help="Replace an existing lab (its disks and replicas are deleted).")
@click.pass_context
@handle_errors
def init(ctx, site_file, force):
    """Create a lab from a site file: vault.db and the VMs' disk files."""
    with Lab.create(_lab_dir(ctx), site_file, force=force) as lab:
        st = lab.status()
        click.echo(f"created lab {lab.path} from {site_file}: {lab.site.lab.name}")
        click.echo(f"lab time {st['now_text']}, {len(st['vms'])} VMs, "
                   f"{sum(len(v['disks']) for v in st['vms'])} disks")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def status(ctx, as_json):
    """Every VM: site, cloud, power, disks, protection."""
    with open_lab(ctx) as lab:
        st = lab.status()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"{st['name']}  [{st['scenario']}]  lab time {st['now_text']}")
    click.echo(f"{'VM':<12} {'site':<8} {'location':<18} {'power':<8} {'protection':<16} disks")
    for vm in st["vms"]:
        disks = ", ".join(
            f"{d['name']} {_human_bytes(d['logical_bytes'])} ({_human_bytes(d['allocated_bytes'])} used)"
            for d in vm["disks"]
        )
        click.echo(f"{vm['name']:<12} {vm['site']:<8} {vm['location']:<18} {vm['power']:<8} "
                   f"{vm['protection']:<16} {disks}")


@main.command()
@click.option("--for", "duration", required=True, help="How much lab time: 90s, 15m, 2h, 1d.")
@click.pass_context
@handle_errors
def run(ctx, duration):
    """Advance lab time, doing all work that falls due, as fast as the machine can."""
    seconds = parse_duration(duration)
    with open_lab(ctx) as lab:
        r = lab.run(seconds)
    click.echo(f"lab time {format_time(r['from'])} -> {format_time(r['to'])} "
               f"({format_duration(seconds)}): {r['writes']} guest writes")


@main.group()
def vm():
    """Power a VM on or off."""


def _power_command(action: str, doc: str):
    @vm.command(name=action, help=doc)
    @click.argument("name")
    @click.pass_context
    @handle_errors
    def cmd(ctx, name):
        with open_lab(ctx) as lab:
            state = lab.vm_power(name, action)
            click.echo(f"{lab.vm(name).name}: {state}")

    return cmd


_power_command("start", "Start a VM: its guest workload writes as lab time passes.")
_power_command("stop", "Turn a VM off at once (like pulling the plug).")
_power_command("shutdown", "Shut a VM's guest OS down cleanly.")


@main.command()
@click.option("--observer", "--readonly", "observer", is_flag=True, help="Watch only: no action changes the lab.")
@click.pass_context
@handle_errors
def tui(ctx, observer=False):
    """Open the terminal app on the lab."""
    from .app import SrlabApp

    lab = open_lab(ctx)
    try:
        SrlabApp(lab, observer=observer).run()
    finally:
        lab.close()


if __name__ == "__main__":
    main()

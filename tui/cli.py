"""The `srlab` command line. Thin: parse, call engine.Lab, print. User mistakes never traceback."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shlex
import signal
import sqlite3
import sys

import click

from engine import (InvalidInput, JobState, Lab, LabError, environment_error, format_duration, format_time, parse_duration,
                    parse_lab_time, rules)

from .state import fmt_bytes


def handle_errors(fn):
    """Turn engine errors into a message on stderr and the error's exit code. What the machine
    refuses (no space, a read-only folder, a damaged vault) is a message too, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # `srlab status | head`: the reader has gone, say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except (OSError, sqlite3.Error) as exc:
            e = environment_error(exc, f"srlab {fn.__name__.replace('_cmd', '').replace('_', ' ')} failed")
        except LabError as exc:
            e = exc
        click.echo(f"srlab: {e.message}", err=True)
        if e.hint:
            click.echo(f"  {e.hint}", err=True)
        sys.exit(e.exit_code)

    return wrapper


def _terminated(signum, frame):
    """SIGTERM ends a command as Ctrl-C does: what it was writing is rolled back or removed."""
    raise KeyboardInterrupt


def _lab_dir(ctx: click.Context) -> str:
    return ctx.find_root().params["lab"]


def open_lab(ctx: click.Context):
    """The lab a command works on, to use in `with`: the app's own open Lab when the app runs
    the command (`:` in the app; run_in_app gives it as ctx.obj, and `with` leaves it open),
    else the lab directory's, opened now and closed after."""
    given = ctx.find_root().obj
    if isinstance(given, Lab):
        return contextlib.nullcontext(given)
    return Lab.open(_lab_dir(ctx))


# Commands the app's command line does not run (it is the app; the lab is open in it).
NOT_IN_APP = {"init": "srlab init replaces the lab the app has open: quit the app first",
              "tui": "this is the app already",
              "bench": "srlab bench takes the machine for a while: run it in a shell"}


def wait_defaults(group: click.Group, value: bool) -> dict:
    """A click default_map that sets every command's --wait/--no-wait to `value`."""
    out: dict = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            sub = wait_defaults(cmd, value)
            if sub:
                out[name] = sub
        elif any(p.name == "wait" for p in cmd.params):
            out[name] = {"wait": value}
    return out


def run_in_app(lab: Lab, line: str) -> tuple[int, str, str]:
    """Run one command line (`failover MYWSV01 --kind test`) as `srlab` would, parsed by the same
    click commands, on the app's open `lab`: (exit code, what it printed, what it said on stderr).
    In the app, commands that start a job do not wait for it (the app's clock runs it): --wait asks."""
    out, err = io.StringIO(), io.StringIO()
    try:
        args = shlex.split(line)
    except ValueError as e:
        return 2, "", f"srlab: cannot read the command line: {e}\n"
    if not args or args[0] in ("help", "-h"):  # `help`, `help failover`, `help cloud configure`
        args = [*args[1:], "--help"]
    if args[0] in NOT_IN_APP:
        return 2, "", f"srlab: {NOT_IN_APP[args[0]]}\n"
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main.main(args, prog_name="srlab", standalone_mode=False, obj=lab,
                      default_map=wait_defaults(main, False))
        except click.exceptions.Exit as e:
            code = e.exit_code
        except click.ClickException as e:
            e.show(file=err)
            code = e.exit_code
        except click.exceptions.Abort:
            code = 1
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lab",
    envvar="SRLAB_LAB",
    default="lab",
    show_default="$SRLAB_LAB or ./lab",
    type=click.Path(file_okay=False),
    help="The lab directory.",
)
@click.option("--readonly", "--observer", "readonly", is_flag=True,
              help="With no command: open the app as an observer (nothing can change the lab).")
@click.pass_context
def main(ctx: click.Context, lab: str, readonly: bool) -> None:
    """srlab - Site Recovery Lab: a disaster-recovery lab that moves real bytes.

    With no command, opens the terminal app on the lab.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui, observer=readonly)
    elif ctx.invoked_subcommand != "tui" and ctx.obj is None:  # not a command the app runs
        try:
            signal.signal(signal.SIGTERM, _terminated)
        except ValueError:  # not the main thread (an embedding program): leave signals alone
            pass


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


def columns(rows: list[list], right: set[int] = frozenset()) -> list[str]:
    """Rows as lines of columns, each as wide as its widest cell (`right`: aligned right), two
    spaces apart."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))] if cells else []
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in cells]


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
    # each column as wide as its longest value: a long status or site name never shifts the rest
    header = ["VM", "site", "active location", "power", "replication status", "health", "failover", "size", "RPO",
              "last replication"]
    rows = [[vm["name"], vm["site"], vm["active_location"] or "-", vm["power"], vm["protection"], vm["health"] or "-",
             vm["failover_state"] or "-", vm["target_size"] or "-",
             format_duration(vm["rpo_seconds"]) if vm["rpo_seconds"] is not None else "-",
             format_time(vm["last_replication"])] for vm in st["vms"]]
    lines = columns([header, *rows], right={8})
    click.echo(lines[0])
    for vm, line in zip(st["vms"], lines[1:]):
        click.echo(line)
        for d in vm["disks"]:
            click.echo(f"    {d['role']:<4} {d['name']:<16} {fmt_bytes(d['logical_bytes']):>10} "
                       f"({fmt_bytes(d['allocated_bytes'])} used)  {d['path']}")
        if vm.get("azure") and not vm["protection"].startswith(("failed over", "disabling")):
            a = vm["azure"]
            click.echo(f"    replicates {a['from']} -> {a['to']} through cache {a['cache_account']}: "
                       f"{fmt_bytes(a['cache_bytes'])} waiting ({a['cache_dir']})")
        if vm.get("path") and not vm["protection"].startswith(("failed over", "disabling")):
            a = vm["path"]
            click.echo(f"    replicates through process server {a['process_server']} to {a['to']}: "
                       f"{fmt_bytes(a['waiting_bytes'])} waiting in its cache ({a['cache_dir']})")
        for r in vm["recovered"]:
            where = "".join(f", {k.replace('_', ' ')} {r[k]}" for k in ("resource_group", "subnet", "availability_set")
                            if r.get(k))
            click.echo(f"    {r['role']} VM {r['name']} at {r['place']}, {r['power']}, network {r['network']}{where}, "
                       f"last transaction {r['last_transaction']}")
            for p in r["disks"]:
                click.echo(f"      {p}")
        if vm["health_reason"]:
            click.echo(f"    {vm['health']}: {vm['health_reason']}")
            click.echo(f"    action: {vm['health_action']}")
    for f in st["faults"]:
        click.echo(f"fault {f['kind']} on {f['target'] or 'everything'} since {format_time(f['since'])}"
                   + (f" until {format_time(f['until'])}" if f["until"] else "")
                   + f": touches {', '.join(f['touches']) or 'no protected VM'}")
    if any(vm["health"] for vm in st["vms"]):
        click.echo(f"health: Warning when the RPO passes {rules.HEALTH_WARNING_INTERVALS} copy intervals, "
                   f"Critical past {rules.HEALTH_CRITICAL_INTERVALS}"
                   + (" (an Azure VM's interval: its policy's crash-consistent point frequency)"
                      if any(vm.get("azure") for vm in st["vms"]) else ""))


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


@vm.command("workload")
@click.argument("name")
@click.option("--rate", type=float, required=True, help="Write rate in KiB per lab second (the VM's churn).")
@click.pass_context
@handle_errors
def vm_workload(ctx, name, rate):
    """Change a VM's write rate from now on (a busy VM reaches the 50% rule in minutes)."""
    with open_lab(ctx) as lab:
        r = lab.vm_workload(name, rate)
    click.echo(f"{r['vm']}: workload writes {r['rate_kib_s']:g} KiB/s from now on")


# ---- faults ------------------------------------------------------------------------------------


@main.group()
def fault():
    """Break things on purpose: inject, list and clear faults."""


@fault.command("inject")
@click.argument("kind")
@click.option("--target", help="What it touches: a link (SOURCE->TARGET or either end), a target, a server or "
                                "cloud, a host, a VM. Default: everything it can touch.")
@click.option("--for", "duration", help="Clear it by itself after this much lab time (90s, 15m, 3h).")
@click.option("--amount", type=float, help="link-flaky: share of transfers lost; link-slow: share of bandwidth kept.")
@click.pass_context
@handle_errors
def fault_inject(ctx, kind, target, duration, amount):
    """Inject a fault of KIND (srlab fault kinds lists them)."""
    seconds = parse_duration(duration) if duration is not None else None
    with open_lab(ctx) as lab:
        r = lab.fault_inject(kind, target, seconds, amount)
        if "damaged" in r:
            click.echo(f"fault {kind}: damaged {r['damaged']}")
            click.echo("  srlab's own checks find it: the item turns Critical when they do (srlab events)")
            return
        touched = next((f["touches"] for f in lab.faults() if f["id"] == r["id"]), [])
    click.echo(f"fault {kind} on {r['target'] or 'everything'} in effect"
               + (f" until {format_time(r['until'])}" if r["until"] else " until cleared")
               + (f" (amount {r['amount']:g})" if r["amount"] is not None else ""))
    click.echo(f"  touches: {', '.join(touched) or 'no protected VM yet'}")


@fault.command("clear")
@click.argument("kind", required=False)
@click.option("--target", help="Only the fault on this target.")
@click.option("--all", "everything", is_flag=True, help="Every fault in effect.")
@click.pass_context
@handle_errors
def fault_clear(ctx, kind, target, everything):
    """Clear a fault (by KIND, or --all); replication retries on its own."""
    if not kind and not everything:
        raise InvalidInput("name the fault kind to clear, or give --all", "see them with: srlab fault list")
    if kind and everything:
        raise InvalidInput("give a fault kind or --all, not both")
    with open_lab(ctx) as lab:
        rows = lab.fault_clear(kind, target)
    for f in rows:
        click.echo(f"fault {f['kind']} on {f['target'] or 'everything'} cleared")


@fault.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def fault_list(ctx, as_json):
    """The faults in effect and the VMs they touch."""
    with open_lab(ctx) as lab:
        fs = lab.faults()
    if as_json:
        click.echo(json.dumps(fs, indent=2))
        return
    if not fs:
        click.echo("no fault in effect")
        return
    for f in fs:
        click.echo(f"{f['kind']:<22} {f['target'] or '(everything it can touch)':<28} since {format_time(f['since'])}"
                   + (f" until {format_time(f['until'])}" if f["until"] else "")
                   + (f" amount {f['amount']:g}" if f["amount"] is not None else ""))
        click.echo(f"  {f['code'] or 'no error'} ({'recoverable: retried' if f['recoverable'] else 'unrecoverable'});"
                   f" touches {', '.join(f['touches']) or 'no protected VM'}")


@fault.command("kinds")
def fault_kinds():
    """Every kind of fault, what it touches and how replication takes it."""
    for k in Lab.fault_kinds():
        how = ("damages a file" if k["damage"] else "no error" if not k["code"] else
               "recoverable" if k["recoverable"] else "unrecoverable")
        click.echo(f"{k['kind']:<22} --target {k['touches']:<7} {k['code'] or '-':<24} {how:<15} {k['about']}")


@main.command("events")
@click.option("--vm", "vm_name", help="Only this VM's events (and its recovered VMs').")
@click.option("--since", help="From this lab time: 'YYYY-MM-DD HH:MM', 'HH:MM' or how long ago ('2h').")
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def events_cmd(ctx, vm_name, since, limit, as_json):
    """Events: lab time, subject, level, code, message and the recommended action, oldest first."""
    with open_lab(ctx) as lab:
        evs = list(reversed(lab.events_query(vm_name, parse_lab_time(since, lab.now) if since else None, limit)))
    if as_json:
        click.echo(json.dumps(evs, indent=2))
        return
    for e in evs:
        click.echo(f"{format_time(e['time'])}  {e['subject']:<14} {e['level']:<7} "
                   + (f"[{e['code']}] " if e["code"] else "") + e["message"])
        if e["action"]:
            click.echo(f"{'':<21}{'':<23}action: {e['action']}")


def _wait(lab: Lab, job_ids: list[int], wait: bool) -> None:
    """Print each job's outcome; with wait, advance lab time until the jobs end."""
    if wait and not lab.acquire_clock():
        click.echo(f"the lab's clock is driven by another srlab process (pid {lab.clock_holder()}): "
                   "the job advances there")
    elif wait:
        lab.run_until_done(job_ids)
    failed = False
    for jid in job_ids:
        j = lab.job(jid)
        if j["state"] == JobState.IN_PROGRESS:
            click.echo(f"job {jid} {j['name']}: in progress (advance lab time: srlab run --for 5m)")
            continue
        if j["state"] == JobState.WAITING:
            continue  # _reports says what it waits for
        click.echo(f"job {jid} {j['name']}: {j['state']} at {format_time(j['ended'])} "
                   f"after {format_duration(j['duration'])}")
        if j["state"] == JobState.FAILED:
            click.echo(f"  error: {j['error']}", err=True)
            failed = True
    if failed:
        sys.exit(1)


wait_option = click.option("--wait/--no-wait", default=True, show_default=True,
                           help="Advance lab time until the job ends, as a portal waits on it.")


@main.group()
def server():
    """Register a VMM server with the vault."""


@server.command("register")
@click.argument("name")
@wait_option
@click.pass_context
@handle_errors
def server_register(ctx, name, wait):
    """Install the provider on NAME and register it (creates the data-encryption key file)."""
    with open_lab(ctx) as lab:
        _wait(lab, [lab.register_server(name)], wait)


@server.command("unregister")
@click.argument("name")
@wait_option
@click.pass_context
@handle_errors
def server_unregister(ctx, name, wait):
    """Unregister NAME from the vault (job "Unregister server"): its hosts' agents and its
    data-encryption key file are removed. Refused while any of its clouds has protection
    settings (remove them first: srlab cloud unprotect CLOUD)."""
    with open_lab(ctx) as lab:
        _wait(lab, [lab.unregister_server(name)], wait)


@main.group()
def agent():
    """The Recovery Services agent on Hyper-V hosts."""


@agent.command("install")
@click.argument("host")
@wait_option
@click.pass_context
@handle_errors
def agent_install(ctx, host, wait):
    """Install the Recovery Services agent on HOST."""
    with open_lab(ctx) as lab:
        _wait(lab, [lab.install_agent(host)], wait)


@main.group()
def mobility():
    """The mobility service on physical servers (seed 003)."""


@mobility.command("install")
@click.argument("servers", nargs=-1, required=True)
@click.option("--push", is_flag=True, help="Push it from the process server with the site's push account "
                                           "(default: installed by hand on each server).")
@wait_option
@click.pass_context
@handle_errors
def mobility_install(ctx, servers, push, wait):
    """Install the mobility service on SERVERS (an Install mobility service job each); it
    registers with their configuration server over HTTPS 443."""
    with open_lab(ctx) as lab:
        _wait(lab, lab.install_mobility(list(servers), push), wait)


@main.group("process-server")
def process_server_group():
    """Process servers in Azure, for failback of physical servers to VMware (seed 003)."""


@process_server_group.command("deploy")
@click.argument("name")
@click.option("--region", required=True, help="The Azure region the failed-over servers run in.")
@click.option("--server", help="The configuration server it registers with (default: the lab's only one).")
@wait_option
@click.pass_context
@handle_errors
def process_server_deploy(ctx, name, region, server, wait):
    """Create process server NAME as an Azure VM in REGION, registered with the configuration
    server through the VPN (job "Deploy process server in Azure")."""
    with open_lab(ctx) as lab:
        _wait(lab, [lab.deploy_process_server(name, region, server)], wait)


@process_server_group.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def process_server_remove(ctx, name):
    """Delete process server NAME from Azure (once no failback goes through it)."""
    with open_lab(ctx) as lab:
        lab.remove_process_server(name)
    click.echo(f"deleted process server {name}")


@main.group()
def policy():
    """Replication policies for physical servers (seed 003): create, then associate with a
    configuration server."""


@policy.command("create")
@click.argument("name")
@click.option("--retention", type=int, help="Recovery point retention, hours (0-72, default 24).")
@click.option("--app-consistent", type=int, help="App-consistent snapshot frequency, hours (0 = none, 1-12; "
                                                 "default 1).")
@click.pass_context
@handle_errors
def policy_create(ctx, name, retention, app_consistent):
    """Create replication policy NAME and its failback policy NAME-failback."""
    with open_lab(ctx) as lab:
        p = lab.create_policy(name, retention, app_consistent)
    click.echo(f"created {p['name']} (retention {p['retention_h']} h, app-consistent "
               f"{p['app_consistent_h'] or 'none'}{' h' if p['app_consistent_h'] else ''}) and {p['name']}-failback")


@policy.command("associate")
@click.argument("name")
@click.option("--server", required=True, help="The configuration server.")
@click.option("--storage-account", help="Target storage account (default: the vault region's first geo-redundant "
                                        "one).")
@click.pass_context
@handle_errors
def policy_associate(ctx, name, server, storage_account):
    """Associate policy NAME (and its failback policy) with a configuration server: its servers
    replicate by it to Azure."""
    with open_lab(ctx) as lab:
        row = lab.associate_policy(name, server, storage_account)
    click.echo(f"associated {row['policy_name']} with {row['container']}: replicate to {row['storage_account']} "
               f"({row['target']})")


@policy.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def policy_list(ctx, as_json):
    """Replication and failback policies, and the configuration server each is associated with."""
    with open_lab(ctx) as lab:
        rows = lab.policies()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no policies (srlab policy create NAME)")
    for p in rows:
        click.echo(f"{p['name']:<24} {_policy_line(p)}")


def _policy_line(p: dict) -> str:
    app = f"{p['app_consistent_h']} h" if p["app_consistent_h"] else "none"
    return (f"{p['kind']}, retention {p['retention_h']} h, app-consistent {app}, associated with "
            f"{p['server'] or '-'}")


@main.group()
def cloud():
    """Protection settings of VMM clouds."""


@cloud.command("configure")
@click.argument("cloud_name", metavar="CLOUD")
@click.option("--target", required=True, help="'azure' or the name of a recovery cloud.")
@click.option("--storage-account", help="Azure storage account (geo-redundant, in the vault's region).")
@click.option("--frequency", default="5m", show_default=True, help="Copy frequency: 30s, 5m or 15m.")
@click.option("--retention", default=0, show_default=True, type=int, help="Recovery point retention, hours (0-24).")
@click.option("--app-consistent", default=0, show_default=True, type=int,
              help="App-consistent snapshot frequency, hours (0 = none, 1-12).")
@click.option("--encrypt/--no-encrypt", default=False, show_default=True, help="Encrypt data at rest (Azure).")
@click.option("--start", default="now", show_default=True, help="Initial replication start: now or HH:MM (HH:00/HH:30).")
@wait_option
@click.pass_context
@handle_errors
def cloud_configure(ctx, cloud_name, target, storage_account, frequency, retention, app_consistent, encrypt, start,
                    wait):
    """Set CLOUD's replication policy (a Configure protection job)."""
    # values out of the policy's ranges, and names the lab does not have, are bad input (exit 2),
    # whatever state the cloud is in; the engine's refusals of a well-formed policy are exit 1
    problems = rules.policy_problems(frequency, retention, app_consistent, start)
    with open_lab(ctx) as lab:
        res = lab.resources()
        clouds = {c["name"].lower() for c in res["clouds"]}
        accounts = [a["name"] for a in res["storage_accounts"]]
        if target.lower() != "azure" and target.lower() not in clouds:
            problems.append(f"target must be 'azure' or a recovery cloud; no cloud named {target!r}")
        if storage_account and storage_account not in accounts:
            problems.append(f"no storage account named {storage_account!r} (accounts: {', '.join(accounts) or 'none'})")
        if problems:
            raise InvalidInput(f"cannot configure protection for cloud {cloud_name}:\n  - " + "\n  - ".join(problems),
                               "fix the settings above and try again; nothing was changed")
        _wait(lab, [lab.configure_cloud(cloud_name, target, storage_account, frequency, retention,
                                        app_consistent, encrypt, start)], wait)


@cloud.command("unprotect")
@click.argument("cloud_name", metavar="CLOUD")
@wait_option
@click.pass_context
@handle_errors
def cloud_unprotect(ctx, cloud_name, wait):
    """Remove CLOUD's protection settings (job "Remove protection settings"). Refused while any
    VM of the cloud is protected (srlab unprotect VM... first) or the cloud is being configured."""
    with open_lab(ctx) as lab:
        _wait(lab, [lab.unprotect_cloud(cloud_name)], wait)


@main.group()
def network():
    """Network mappings: VM network -> Azure virtual network or recovery VM network."""


@network.command("map")
@click.argument("source")
@click.argument("target")
@click.pass_context
@handle_errors
def network_map(ctx, source, target):
    """Map the VM network SOURCE to TARGET."""
    with open_lab(ctx) as lab:
        lab.map_network(source, target)
    click.echo(f"mapped {source} -> {target}")


@network.command("unmap")
@click.argument("source")
@click.pass_context
@handle_errors
def network_unmap(ctx, source):
    """Remove SOURCE's mapping."""
    with open_lab(ctx) as lab:
        lab.unmap_network(source)
    click.echo(f"unmapped {source}")


@main.command()
@click.argument("vms", nargs=-1, required=True)
@click.option("--target-size", help="Azure size (XS S M L XL A5 A6 A7); default: picked from CPU and memory.")
@click.option("--target-name", help="Name of the VM at the target (needed when the VM's name is not valid there).")
@click.option("--nic", help="With several NICs, the one used at the target (default: the first).")
@click.option("--target-region", help="Azure VMs: the region to replicate to (default: the paired region).")
@click.option("--target-resource-group", help="Azure VMs: an existing resource group there (default: SOURCE-asr, "
                                              "created).")
@click.option("--target-network", help="Azure VMs: an existing virtual network there (default: the mapped one, or "
                                       "SOURCE-asr, created).")
@click.option("--target-storage", help="Azure VMs: an existing storage account there (default: SOURCEasr, created).")
@click.option("--cache-storage", help="Azure VMs: an existing storage account in the source region for the cache "
                                      "(default: REGIONasrcache, created).")
@click.option("--target-availability-set", help="Azure VMs in an availability set: an existing one there "
                                                "(default: SOURCE-asr, created).")
@click.option("--retention", type=int, help="Azure VMs, the region's first protection: recovery point retention, "
                                            "hours (0-72, default 24).")
@click.option("--app-consistent", type=int, help="Azure VMs, the region's first protection: app-consistent "
                                                 "snapshot frequency, hours (0-12, default 4).")
@click.option("--policy", "policy_name", help="Physical servers: the replication policy (the one associated with "
                                              "their configuration server).")
@click.option("--process-server", help="Physical servers: the process server their data goes through (default: "
                                       "the one on the configuration server).")
@click.option("--group", help="Physical servers: a replication group; its members share recovery points.")
@wait_option
@click.pass_context
@handle_errors
def protect(ctx, vms, target_size, target_name, nic, target_region, target_resource_group, target_network,
            target_storage, cache_storage, target_availability_set, retention, app_consistent, policy_name,
            process_server, group, wait):
    """Enable protection for VMS (an Enable protection job each). A Hyper-V VM goes where its
    cloud's settings say; an Azure VM replicates to another region (Enable replication), through
    target resources Site Recovery creates unless you give existing ones; a physical server
    replicates through a process server by its configuration server's policy."""
    with open_lab(ctx) as lab:
        ids = lab.protect(list(vms), target_size, target_name, nic, target_region, target_resource_group,
                          target_network, target_storage, cache_storage, target_availability_set, retention,
                          app_consistent, policy_name, process_server, group)
        _wait(lab, ids, wait)
        for name in vms:
            st = lab.item_status(lab.vm(name))
            if st["azure"]:
                dst = st["azure"]["sides"]["recovery"]
                click.echo(f"{lab.vm(name).name}: {st['protection']}; {st['azure']['from']} -> {st['azure']['to']}: "
                           f"resource group {dst['resource_group']}, network {dst['network'] or '-'}"
                           f"/{dst['subnet'] or '-'}, storage {dst['storage_account']}, cache "
                           f"{st['azure']['cache_account']}, availability set {dst['availability_set'] or '-'}")
                continue
            click.echo(f"{lab.vm(name).name}: {st['protection']}; target {st['target_name']} "
                       f"size {st['target_size'] or '-'}, NIC {st['nic'] or '-'}")


@main.command()
@click.argument("vms", nargs=-1, required=True)
@click.option("--stop-managing", is_flag=True,
              help="Disable protection and stop managing: the vault forgets the VM at once, without cleaning up "
                   "at the recovery side. The replica store stays on disk (srlab says where) for you to delete.")
@wait_option
@click.pass_context
@handle_errors
def unprotect(ctx, vms, stop_managing, wait):
    """Disable protection for VMS: replication stops; the replica and its points are deleted.

    A VM that runs at the recovery side after a failover keeps running there with its disks
    (a migration); only its protection, replica and recovery points go.

    With --stop-managing (for when the VMM server cannot be reached) nothing is cleaned up at the
    recovery side: the replica store (base disks and recovery-point frames, with UNMANAGED.txt
    saying what they are) stays under storage/ until you delete it.
    """
    with open_lab(ctx) as lab:
        ids = lab.unprotect(list(vms), stop_managing=stop_managing)
        _wait(lab, ids, wait)
        for jid in ids:
            left = (lab.job(jid)["report"] or {}).get("replica_left")
            if left:
                click.echo(f"  replica left at {left} (see UNMANAGED.txt there); delete it when no longer needed")


@main.command()
@click.argument("vms", nargs=-1, required=True)
@click.option("--kind", required=True, type=click.Choice(["test", "planned", "unplanned"]),
              help="test: a copy in an isolated network; planned: shut down, sync, fail over (no data loss); "
                   "unplanned: from a recovery point, the source may be gone.")
@click.option("--point", help="latest (default), latest-processed, latest-app, or a point id (srlab points VM).")
@click.option("--network", help="Network at the recovery side, or none (isolated). Default: none for a test, "
                                "else the mapped network.")
@click.option("--shutdown-sync", is_flag=True,
              help="Unplanned: shut down the VMs and synchronize the latest data when the source is reachable.")
@click.option("--sync", type=click.Choice(["before", "during"]),
              help="Failback (planned failover of a VM running at the recovery side): synchronize before the "
                   "failover, the VM keeps running (minimize downtime; default), or during it only (minimize sync).")
@click.option("--key-file", type=click.Path(dir_okay=False),
              help="The data-encryption key file, when the policy encrypts replicas.")
@wait_option
@click.pass_context
@handle_errors
def failover(ctx, vms, kind, point, network, shutdown_sync, sync, key_file, wait):
    """Fail VMS over (a failover job each); a planned failover of a VM running at the recovery
    side fails it back. A test failover waits for: srlab complete JOB --note TEXT."""
    with open_lab(ctx) as lab:
        ids = lab.failover(list(vms), kind, point, network, shutdown_sync, sync, key_file)
        _wait(lab, ids, wait)
        _reports(lab, ids)


def _reports(lab: Lab, ids: list[int]) -> None:
    for jid in ids:
        j = lab.job(jid)
        if j["state"] == JobState.WAITING:
            step = next(s["name"] for s in j["steps"] if s["state"] == JobState.WAITING)
            click.echo(f"job {jid} waits for action: {step} (srlab complete {jid} --note TEXT)")
        for line in lab.report_lines(j["report"]):
            click.echo(f"  {line}")


@main.command("change-point")
@click.argument("name")
@click.option("--point", required=True, help="latest, latest-app, or a retained point id (srlab points VM).")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The data-encryption key file, if encrypted.")
@wait_option
@click.pass_context
@handle_errors
def change_point(ctx, name, point, key_file, wait):
    """While commit is pending: rebuild the failed-over VM from another recovery point."""
    with open_lab(ctx) as lab:
        ids = [lab.change_point(name, point, key_file)]
        _wait(lab, ids, wait)
        _reports(lab, ids)


@main.command()
@click.argument("vms", nargs=-1, required=True)
@wait_option
@click.pass_context
@handle_errors
def commit(ctx, vms, wait):
    """Commit a failover (its recovery points are done with) or a failback (the VM at the recovery
    side is deleted)."""
    with open_lab(ctx) as lab:
        _wait(lab, lab.commit(list(vms)), wait)


@main.command()
@click.argument("vms", nargs=-1, required=True)
@click.option("--process-server", help="Physical servers in Azure: the process server in Azure (default: the only "
                                       "one in the VM's region).")
@click.option("--master-target", help="Physical servers in Azure: the master target on premises (default: the "
                                      "configuration server's).")
@click.option("--datastore", help="Physical servers in Azure: the VMware datastore of the VM they come back as "
                                  "(default: the first).")
@wait_option
@click.pass_context
@handle_errors
def reprotect(ctx, vms, process_server, master_target, datastore, wait):
    """Reverse replicate: after a failback's commit, replicate to the recovery side again (initial
    replication first); after a VMM -> VMM failover's commit, replicate the recovery cloud's VM
    back to the primary cloud; after an Azure VM's committed failover, replicate it back to the
    other region; a physical server in Azure replicates to a VMware VM (seeded from its disks on
    premises). Reprotect to another region or to VMware sends only the blocks that differ."""
    with open_lab(ctx) as lab:
        _wait(lab, lab.reprotect(list(vms), process_server, master_target, datastore), wait)
        for name in vms:
            st = lab.item_status(lab.vm(name))
            click.echo(f"{lab.vm(name).name}: {st['protection']}, {st['failover_state'] or '-'}, "
                       f"active location {st['active_location']}")


@main.command("resync")
@click.argument("vms", nargs=-1)
@click.option("--schedule", metavar="HH:MM|off",
              help="The vault's off-hours time (lab time, UTC) when VMs that need a resync start one, or off.")
@wait_option
@click.pass_context
@handle_errors
def resync_cmd(ctx, vms, schedule, wait):
    """Resynchronize VMS: compare their disks with the replica by checksums, send only what
    differs, make a new recovery point, then resume delta replication (a Resynchronize job
    each). With --schedule: set when VMs marked "resynchronization required" resync on their own."""
    if bool(vms) == (schedule is not None):
        raise InvalidInput("give the VMs to resynchronize, or --schedule HH:MM|off (not both)",
                           "for example: srlab resync MYWSV01, or srlab resync --schedule 02:00")
    with open_lab(ctx) as lab:
        if schedule is not None:
            value = lab.set_resync_schedule(schedule)
            click.echo("automatic resynchronization: " + ("off" if value == "off" else
                                                          f"at {value} (lab time) for VMs that need one"))
            return
        ids = lab.resync(list(vms))
        _wait(lab, ids, wait)
        _reports(lab, ids)


@main.group()
def plan():
    """Recovery plans: ordered groups of VMs, manual actions and scripts, failed over as one."""


@plan.command("create")
@click.argument("name")
@click.option("--source", required=True, help="Where the VMs are protected from (their cloud).")
@click.option("--target", required=True, help="Where they replicate to (Azure region or recovery cloud).")
@click.option("--vm", "vms", multiple=True, required=True, help="A VM of the plan (repeat); all start in group 1.")
@click.option("--rto", help="The plan's RTO target (e.g. 30m), for drill reports.")
@click.pass_context
@handle_errors
def plan_create(ctx, name, source, target, vms, rto):
    """Create a recovery plan (at most 7 groups, 100 VMs)."""
    with open_lab(ctx) as lab:
        _print_plan(lab.plan_create(name, source, target, list(vms), parse_duration(rto) if rto else None))


@plan.group("group")
def plan_group():
    """A plan's groups."""


@plan_group.command("add")
@click.argument("name")
@click.pass_context
@handle_errors
def plan_group_add(ctx, name):
    """Add a group at the end of the plan."""
    with open_lab(ctx) as lab:
        click.echo(f"{name}: group {lab.plan_add_group(name)} added")


@plan.command("move")
@click.argument("name")
@click.argument("vm_name", metavar="VM")
@click.option("--group", type=int, required=True)
@click.pass_context
@handle_errors
def plan_move(ctx, name, vm_name, group):
    """Put a VM (protected between the plan's source and target) in a group of the plan."""
    with open_lab(ctx) as lab:
        lab.plan_move(name, vm_name, group)
        _print_plan(lab.plan(name))


@plan.command("remove")
@click.argument("name")
@click.argument("vm_name", metavar="VM")
@click.pass_context
@handle_errors
def plan_remove(ctx, name, vm_name):
    """Take a VM out of the plan."""
    with open_lab(ctx) as lab:
        lab.plan_remove(name, vm_name)
        _print_plan(lab.plan(name))


@plan_group.command("move")
@click.argument("name")
@click.argument("group", type=int)
@click.option("--to", type=int, required=True, help="Its new position.")
@click.pass_context
@handle_errors
def plan_group_move(ctx, name, group, to):
    """Reorder the plan's groups: GROUP moves to position --to."""
    with open_lab(ctx) as lab:
        lab.plan_move_group(name, group, to)
        _print_plan(lab.plan(name))


@plan_group.command("remove")
@click.argument("name")
@click.argument("group", type=int)
@click.pass_context
@handle_errors
def plan_group_remove(ctx, name, group):
    """Remove an empty group (and its actions)."""
    with open_lab(ctx) as lab:
        lab.plan_remove_group(name, group)
        _print_plan(lab.plan(name))


@plan.group("action")
def plan_action():
    """Manual actions and scripts before or after a group."""


@plan_action.command("add")
@click.argument("name")
@click.option("--group", type=int, required=True)
@click.option("--before", "phase", flag_value="before", help="Before the group's VMs start.")
@click.option("--after", "phase", flag_value="after", default=True, help="After they run (default).")
@click.option("--manual", help="A manual action: the job waits until it is completed (srlab complete JOB).")
@click.option("--script", type=click.Path(dir_okay=False), help="An executable run with the runbook's context "
                                                                "as JSON on stdin and SRLAB_* variables.")
@click.pass_context
@handle_errors
def plan_action_add(ctx, name, group, phase, manual, script):
    """Add a manual action or a script to a group."""
    with open_lab(ctx) as lab:
        lab.plan_add_action(name, group, phase, manual, script)
        _print_plan(lab.plan(name))


@plan_action.command("remove")
@click.argument("name")
@click.argument("action_id", type=int)
@click.pass_context
@handle_errors
def plan_action_remove(ctx, name, action_id):
    """Remove an action (its id is in srlab plan show PLAN --json)."""
    with open_lab(ctx) as lab:
        lab.plan_remove_action(name, action_id)
        _print_plan(lab.plan(name))


@plan.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def plan_show(ctx, name, as_json):
    """A plan's groups, VMs and actions."""
    with open_lab(ctx) as lab:
        p = lab.plan(name)
    if as_json:
        click.echo(json.dumps(p, indent=2))
    else:
        _print_plan(p)


@plan.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def plan_list(ctx, as_json):
    """Every plan."""
    with open_lab(ctx) as lab:
        ps = lab.plans()
    if as_json:
        click.echo(json.dumps(ps, indent=2))
        return
    for p in ps:
        vms = sum(len(g["vms"]) for g in p["groups"])
        click.echo(f"{p['name']}: {p['source']} -> {p['target']}, {len(p['groups'])} groups, {vms} VMs")


@plan.command("delete")
@click.argument("name")
@click.pass_context
@handle_errors
def plan_delete(ctx, name):
    """Delete a plan (its VMs stay protected)."""
    with open_lab(ctx) as lab:
        lab.plan_delete(name)
    click.echo(f"plan {name} deleted")


def _print_plan(p: dict) -> None:
    rto = f", RTO target {format_duration(p['rto_target'])}" if p.get("rto_target") else ""
    click.echo(f"plan {p['name']}: {p['source']} -> {p['target']}{rto}")
    for g in p["groups"]:
        for a in g["before"]:
            click.echo(f"  before group {g['group']}: {a['kind']} {a['text']}")
        click.echo(f"  group {g['group']}: {', '.join(g['vms']) or '(empty)'}")
        for a in g["after"]:
            click.echo(f"  after group {g['group']}: {a['kind']} {a['text']}")


@plan.command("failover")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(["test", "planned", "unplanned"]),
              help="As for a VM; planned when the plan's VMs run at the recovery side is the failback.")
@click.option("--point", type=click.Choice(["latest", "latest-processed", "latest-app"]),
              help="Plans offer no custom point (default latest).")
@click.option("--shutdown-sync", is_flag=True, help="Unplanned: shut the VMs down and sync when reachable.")
@click.option("--sync", type=click.Choice(["before", "during"]), help="Failback: when to synchronize.")
@click.option("--key-file", type=click.Path(dir_okay=False), help="The data-encryption key file, if encrypted.")
@wait_option
@click.pass_context
@handle_errors
def plan_failover(ctx, name, kind, point, shutdown_sync, sync, key_file, wait):
    """Fail a whole plan over: groups in order, each group's VMs in parallel."""
    with open_lab(ctx) as lab:
        ids = [lab.plan_start(name, kind, point, shutdown_sync, sync, key_file)]
        _wait(lab, ids, wait)
        _reports(lab, ids)


def _plan_op_command(op: str, doc: str):
    @plan.command(name=op, help=doc)
    @click.argument("name")
    @wait_option
    @click.pass_context
    @handle_errors
    def cmd(ctx, name, wait):
        with open_lab(ctx) as lab:
            ids = [lab.plan_start(name, op)]
            _wait(lab, ids, wait)
            _reports(lab, ids)

    return cmd


_plan_op_command("commit", "Commit every VM of the plan, group by group.")
_plan_op_command("reprotect", "Reverse replicate every VM of the plan, group by group.")


@plan.command("check")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(["test", "planned", "unplanned", "commit", "reprotect"]))
@click.pass_context
@handle_errors
def plan_check(ctx, name, kind):
    """Dry run: which steps would fail now and why, and the RTO the plan's steps would take."""
    with open_lab(ctx) as lab:
        c = lab.plan_check(name, kind)
    for p in c["problems"]:
        click.echo(f"would fail: {p}")
    target = f" (target {format_duration(c['rto_target'])})" if c["rto_target"] else ""
    click.echo(f"{name} {kind}: {'ready' if not c['problems'] else 'not ready'}; RTO by its steps "
               f"{format_duration(c['rto_seconds'])}{target}, plus {c['manual_actions']} manual action(s)")
    if c["problems"]:
        sys.exit(1)


@main.command("resume")
@click.argument("job_id", type=int)
@wait_option
@click.pass_context
@handle_errors
def resume_cmd(ctx, job_id, wait):
    """Run a failed recovery plan job again from its failed step (after fixing its script)."""
    with open_lab(ctx) as lab:
        lab.resume_job(job_id)
        _wait(lab, [job_id], wait)
        _reports(lab, [job_id])


@main.command("report")
@click.argument("job_id", type=int)
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="Where to write it.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of Markdown.")
@click.pass_context
@handle_errors
def report_cmd(ctx, job_id, out_file, as_json):
    """A DR drill report of a plan's or a VM's failover job, for an auditor."""
    with open_lab(ctx) as lab:
        d = lab.drill_report(job_id)
        text = json.dumps(d, indent=2) if as_json else lab.drill_markdown(d)
    try:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise click.BadParameter(f"cannot write {out_file}: {e.strerror}", param_hint="--out") from None
    click.echo(f"wrote {out_file}")


@main.group("group")
def replication_group():
    """Replication groups: VMs whose recovery points share each instant (multi-VM consistency)."""


@replication_group.command("create")
@click.argument("name")
@click.option("--vm", "vms", multiple=True, required=True, help="A protected VM (repeat).")
@click.pass_context
@handle_errors
def group_create(ctx, name, vms):
    """Group protected VMs: their logs freeze together; they fail over together, through a plan."""
    with open_lab(ctx) as lab:
        lab.create_replication_group(name, list(vms))
    click.echo(f"replication group {name}: {', '.join(vms)}")


@vm.command("set-target")
@click.argument("name")
@click.option("--size", help="Azure size: XS S M L XL A5 A6 A7.")
@click.option("--name", "target_name", help="Name of the VM at the target.")
@click.option("--nic", help="The NIC used at the target.")
@click.pass_context
@handle_errors
def vm_set_target(ctx, name, size, target_name, nic):
    """Change a protected VM's target size, name or NIC."""
    with open_lab(ctx) as lab:
        st = lab.set_target(name, size, target_name, nic)
    click.echo(f"{name}: target {st['target_name']} size {st['target_size'] or '-'}, NIC {st['nic'] or '-'}")


@main.group()
def link():
    """The replication link: bandwidth and state."""


@link.command("set")
@click.argument("ends", nargs=-1, metavar="[SOURCE TARGET]")
@click.option("--mbps", type=float, help="Bandwidth in megabits per second.")
@click.option("--state", type=click.Choice(["up", "down", "lossy"]), help="Link state.")
@click.pass_context
@handle_errors
def link_set(ctx, ends, mbps, state):
    """Set a link's bandwidth or state (name it when the lab has several)."""
    if len(ends) not in (0, 2):
        raise click.UsageError("give both SOURCE and TARGET, or neither")
    with open_lab(ctx) as lab:
        row = lab.set_link(*(ends or (None, None)), mbps=mbps, state=state)
    click.echo(f"link {row['source']} -> {row['target']}: {row['mbps']:g} Mbps, {row['state']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def resources(ctx, as_json):
    """Servers, agents, clouds and their protection settings, networks and mappings, links."""
    with open_lab(ctx) as lab:
        r = lab.resources()
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"vault region: {r['vault_region'] or '-'}")
    for s in r["servers"]:
        click.echo(f"server  {s['name']:<20} {s['kind']:<22} {'registered' if s['registered'] else 'not registered'}"
                   + (f"  key {s['key_file']}" if s["key_file"] else ""))
    for h in r["hosts"]:
        click.echo(f"host    {h['name']:<20} on {h['server']:<19} agent {'installed' if h['agent_installed'] else 'not installed'}")
    for c in r["clouds"]:
        p = c["protection"]
        desc = "not configured" if p is None else (
            f"-> {p['target']} ({p['storage_account'] or p['target_kind']}), every {format_duration(p['frequency'])}, "
            f"retention {p['retention_h']} h, app-consistent "
            f"{str(p['app_consistent_h']) + ' h' if p['app_consistent_h'] else 'none'}, "
            f"encryption {'on' if p['encrypt'] else 'off'}, start {p['start']}")
        click.echo(f"cloud   {c['name']:<20} {desc}")
    for g in r["regions"]:
        p = g["protection"]
        if p is not None:
            desc = (f"policy {p['name']}: -> {p['target']}, continuous (batches every {p['batch']}s), a "
                    f"crash-consistent point every {format_duration(p['frequency'])}, retention {p['retention_h']} h, "
                    f"app-consistent {str(p['app_consistent_h']) + ' h' if p['app_consistent_h'] else 'none'}")
        elif g.get("replicating"):
            desc = f"replicates {', '.join(g['replicating'])} back (reprotected, on its home region's policy)"
        else:
            desc = "no Azure VMs replicate from it"
        click.echo(f"region  {g['name']:<20} paired with {g['paired_region'] or '-'}; {desc}")
    for ph in r["physical"]:
        _echo_physical(ph)
    for w in r["vmware_sites"]:
        hosts = "; ".join(f"{h['name']} ({', '.join(h['datastores'])})" for h in w["hosts"])
        click.echo(f"vmware  {w['name']:<20} vCenter {w['vcenter']}: ESXi {hosts} (failback target)")
    for p in r["policies"]:
        click.echo(f"policy  {p['name']:<20} {_policy_line(p)}")
    for n in r["networks"]:
        made = f"  (created by Site Recovery for {n['made_for']})" if n.get("made_for") else ""
        click.echo(f"network {n['name']:<28} {n['side']:<6} {n['place']}{made}")
    for m in r["mappings"]:
        click.echo(f"mapping {m['source']} -> {m['target']}")
    for a in r["storage_accounts"]:
        made = f"  (created by Site Recovery for {a['made_for']})" if a.get("made_for") else ""
        click.echo(f"storage {a['name']:<20} {a['region']:<12} {a['redundancy']}-redundant{made}")
    for m in r["created_by_site_recovery"]:
        if m["kind"] == "process server":
            click.echo(f"process {m['name']:<20} in Azure ({m['region']}), registered with {m['made_for']} through the "
                       "VPN: fails physical servers back to VMware")
        if m["kind"] in ("resource group", "availability set"):
            label = {"resource group": "group", "availability set": "av-set"}[m["kind"]]
            click.echo(f"{label:<7} {m['name']:<20} {m['region']:<12} "
                       f"(created by Site Recovery for {m['made_for']})")
    for li in r["links"]:
        click.echo(f"link    {li['source']} -> {li['target']}: {li['mbps']:g} Mbps, {li['state']}")
    sched = r["resync_schedule"]
    click.echo("resync  " + ("automatic resynchronization off" if sched == "off" else
                             f"automatic at {sched} (lab time) for VMs that need one"))


def _echo_physical(ph: dict) -> None:
    """A physical site's components (seed 003), as `srlab resources` lists them."""
    mgmt = "; inbound 443 BLOCKED" if ph["management_blocked"] else ""
    click.echo(f"site    {ph['site']:<20} configuration server {ph['configuration_server']}, policy "
               f"{ph['policy'] or '-'}, push account {ph['push_account'] or '-'}{mgmt}")
    for ps in ph["process_servers"]:
        blocked = f"; BLOCKED {', '.join(ps['ports_blocked'])}" if ps["ports_blocked"] else ""
        full = " FULL (servers throttled)" if ps["full"] else ""
        click.echo(f"process {ps['name']:<20} on {ps['on']}, data port {ps['port']}, cache "
                   f"{fmt_bytes(ps['bytes'])} of {fmt_bytes(ps['limit'])}{full} ({ps['shipments']} shipments, "
                   f"{fmt_bytes(ps['raw_bytes'])} before compression) in {ps['cache_dir']}; sent "
                   f"{fmt_bytes(ps['sent_last_hour'])} to Azure in the last hour{blocked}")
    click.echo(f"master  {', '.join(ph['master_targets'])} (master targets, for failback)")
    for sv in ph["servers"]:
        how = f" ({sv['method']})" if sv["method"] else ""
        via = f", sends to {sv['process_server']}" if sv["process_server"] else ""
        click.echo(f"server  {sv['name']:<20} {sv['os']:<36} mobility service {sv['mobility']}{how}{via}")


@main.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def points(ctx, name, as_json):
    """A protected VM's recovery points."""
    with open_lab(ctx) as lab:
        pts = lab.points(name)
    if as_json:
        click.echo(json.dumps(pts, indent=2))
        return
    click.echo(f"{'id':>5}  {'lab time':<19}  {'type':<16}  {'size':>10}  last transaction")
    for p in pts:
        click.echo(f"{p['id']:>5}  {p['time_text']:<19}  {p['kind']:<16}  {fmt_bytes(p['size']):>10}  "
                   f"{p['last_transaction']}")


@main.command()
@click.argument("name")
@click.option("--point", default="latest", show_default=True, help="A point id, latest or latest-app.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def verify(ctx, name, point, as_json):
    """Build NAME's disks at a recovery point from the replica and prove them equal to the source then."""
    with open_lab(ctx) as lab:
        r = lab.verify(name, point)
    if as_json:
        click.echo(json.dumps(r, indent=2))
    else:
        for d in r["damaged"]:
            click.echo(f"damaged: {d['reason']}")
        for d in r["disks"]:
            click.echo(f"{d['disk']}: {'identical' if d['identical'] else 'DIFFERENT'} ({d['actual']})")
        click.echo(f"{r['vm']} at point {r['point']} ({format_time(r['time'])}, {r['kind']}): "
                   f"{'identical' if r['identical'] else 'NOT identical'}; last transaction "
                   f"{r['last_transaction']} (source had written {r['expected_last_transaction']})")
    if not r["identical"]:
        sys.exit(1)


@main.command()
@click.argument("name")
@click.option("--point", default="latest", show_default=True, help="A point id, latest or latest-app.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the disk files.")
@click.pass_context
@handle_errors
def export(ctx, name, point, out_dir):
    """Write NAME's disks as they were at a recovery point (fixed VHD, source file names)."""
    with open_lab(ctx) as lab:
        r = lab.export(name, point, out_dir)
    click.echo(f"{r['vm']} at point {r['point']} ({format_time(r['time'])}):")
    for f in r["files"]:
        click.echo(f"  {f}")


@main.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
@handle_errors
def jobs_cmd(ctx, as_json, limit):
    """Jobs: name, state, start and duration."""
    with open_lab(ctx) as lab:
        js = lab.jobs(limit)
    if as_json:
        click.echo(json.dumps(js, indent=2))
        return
    click.echo(f"{'id':>4}  {'name':<46} {'state':<18} {'started':<19}  duration")
    for j in js:
        click.echo(f"{j['id']:>4}  {j['name']:<46} {j['state']:<18} {format_time(j['started']):<19}  "
                   f"{format_duration(j['duration'])}")


@main.command("complete")
@click.argument("job_id", type=int)
@click.option("--note", default="", help="A note kept with the job (and its report).")
@wait_option
@click.pass_context
@handle_errors
def complete_cmd(ctx, job_id, note, wait):
    """Complete the action a job waits for (a manual action, Complete test, start a failback);
    with --wait the job's remaining steps run."""
    with open_lab(ctx) as lab:
        j = lab.complete_job(job_id, note)
        click.echo(f"job {j['id']} {j['name']}: step completed")
        _wait(lab, [j["id"]], wait)
        _reports(lab, [j["id"]])


@main.command("job")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def job_cmd(ctx, job_id, as_json):
    """One job with its steps."""
    with open_lab(ctx) as lab:
        j = lab.job(job_id)
        children = [lab.job(c) for c in j["children"]]
    if as_json:
        click.echo(json.dumps(j, indent=2))
        return
    click.echo(f"job {j['id']}: {j['name']} — {j['state']}, started {format_time(j['started'])}, "
               f"{format_duration(j['duration'])}")
    if j["error"]:
        click.echo(f"error: {j['error']}")
    for s in j["steps"]:
        dur = format_duration(s["duration"]) if s["duration"] is not None else ""
        click.echo(f"  {s['name']:<48} {s['state']:<14} {format_time(s['started']):<19}  {dur}")
    for c in children:  # a recovery plan's per-VM jobs
        click.echo(f"  job {c['id']}: {c['name']} — {c['state']}")
        for s in c["steps"]:
            click.echo(f"      {s['name']:<44} {s['state']:<14} {format_time(s['started'])}")
    lines = lab.report_lines(j["report"])
    if lines:
        click.echo("report:")
        for line in lines:
            click.echo(f"  {line}")


@main.command()
@click.option("--size-mb", default=512, show_default=True, help="Logical size of the generated disk.")
@click.option("--content-mb", default=192, show_default=True, help="Data written into it before replication.")
@click.option("--change-pct", default=1.0, show_default=True, help="Share of the data changed for the delta.")
@click.option("--repeat", default=3, show_default=True, help="Runs of srlab and of each reference; lines give medians.")
@click.option("--scale", "vms", type=int, help="Instead: build an N-VM lab and time lab hours (engine.scale's site).")
@click.option("--hours", type=float, help="With --scale: lab hours timed after initial replication.  [default: 1]")
@click.option("--rate", type=float, help="With --scale: each VM's writes, KiB per lab second.  [default: 1]")
@click.option("--json", "as_json", is_flag=True, help="Every figure by name, as one JSON object.")
@click.pass_context
@handle_errors
def bench(ctx, size_mb, content_mb, change_pct, repeat, vms, hours, rate, as_json):
    """Time srlab next to lz4, cp and rsync doing the same job on the same bytes, and print the
    ratios of the medians (reference seconds / srlab seconds); or, with --scale N, time an N-VM lab."""
    from click.core import ParameterSource

    from engine import bench as b

    if vms is None:
        if hours is not None or rate is not None:
            raise InvalidInput("--hours and --rate go with --scale N",
                               "for example: srlab bench --scale 100 --hours 0.5")
        r = b.run_bench(size_mb, content_mb, change_pct, repeat=repeat)
        figures, lines = b.figures(r), b.text(r)
    else:
        given = [f"--{p.replace('_', '-')}" for p in ("size_mb", "content_mb", "change_pct", "repeat")
                 if ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE]
        if given:
            raise InvalidInput(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the replication "
                               "bench, not to --scale",
                               "run them apart: srlab bench ...; srlab bench --scale N")
        figures = b.run_scale(vms, 1.0 if hours is None else hours, 1.0 if rate is None else rate)
        lines = b.scale_text(figures)
    click.echo(json.dumps(figures, indent=2) if as_json else "\n".join(lines))


@main.group()
def sample():
    """Generate site files."""


@sample.command("scale")
@click.option("--vms", type=int, required=True, help="How many VMs (1-5000).")
@click.option("--rate", type=float, default=1.0, show_default=True, help="Each VM's write rate, KiB per lab second.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Write the site file here (default: stdout).")
@handle_errors
def sample_scale(vms, rate, out_file):
    """A many-VM site (one VMM cloud to Azure, 1 GiB disks) for scale measurements; the same
    --vms always gives the same site."""
    from engine.scale import scale_site

    text = scale_site(vms, rate)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {out_file}: {vms} VMs; next: srlab init --site {out_file}")
    else:
        click.echo(text, nl=False)


@main.command()
@click.option("--observer", "--readonly", "observer", is_flag=True, help="Watch only: no action changes the lab.")
@click.pass_context
@handle_errors
def tui(ctx, observer=False):
    """Open the terminal app on the lab."""
    from engine import changes

    from .app import SrlabApp

    lab = Lab.open(_lab_dir(ctx))
    try:
        SrlabApp(lab, observer=observer, commands=run_in_app, changes=changes.take_lab).run()
    finally:
        lab.close()


if __name__ == "__main__":
    main()

"""What panels and dialogs need from the app they live in, and what they may ask it to open.

Panels and dialogs never import the app (`tui.app`) nor each other: a panel asks its host to
open a dialog by describing it (one of the requests below), and the app picks the dialog
(`tui.dialogs.dialog_for`). `tui.app.SrlabApp` is the host; tests check that it fits `Host`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Union, cast, runtime_checkable

from rich.text import Text
from textual.dom import DOMNode

from engine import Lab

from .state import LabState

# ---- what a panel may ask the app to open ----------------------------------------------------


@dataclass(frozen=True)
class Confirm:
    """Say what an action will do; OK runs `op` (a function of the lab) in the engine worker."""

    title: str
    lines: list[Text]
    op: Callable[[Lab], Any]
    ok_label: str = "OK"
    danger: bool = False  # what it does cannot be undone: the dialog starts on Cancel


@dataclass(frozen=True)
class ProtectForm:
    """Enable protection on `vms`; `skipped` are (vm, why not) the dialog lists."""

    vms: list[str]
    skipped: list[tuple[str, str]]


@dataclass(frozen=True)
class CreatePolicyForm:
    """Create a replication policy for physical servers (and its failback policy)."""


@dataclass(frozen=True)
class AssociatePolicyForm:
    """Associate a replication policy with configuration server `server`."""

    server: str


@dataclass(frozen=True)
class DeployProcessServerForm:
    """Deploy a process server in Azure region `region` (for failback to VMware)."""

    region: str


@dataclass(frozen=True)
class ReprotectForm:
    """Reprotect a physical server that runs in Azure towards a VMware VM: the process server in
    Azure, the master target and the datastore."""

    vm: str


@dataclass(frozen=True)
class TargetForm:
    vm: str


@dataclass(frozen=True)
class CloudProtectionForm:
    cloud: str


@dataclass(frozen=True)
class MapNetworkForm:
    source: str


@dataclass(frozen=True)
class LinkForm:
    link: dict


@dataclass(frozen=True)
class FailoverForm:
    """Fail `vm` over: `kind` is test, planned or unplanned (a planned failover of a VM that runs
    at the recovery side is its failback). The dialog offers the other kinds, greyed with the
    engine's reason when they are not allowed."""

    vm: str
    kind: str


@dataclass(frozen=True)
class ChangePointForm:
    """While commit is pending: rebuild the failed-over VM from another recovery point."""

    vm: str


@dataclass(frozen=True)
class CompleteForm:
    """Complete the step a job waits on (Complete test, a manual action), with a note."""

    job_id: Any


@dataclass(frozen=True)
class VmDetails:
    """The VM's full-screen details (a drill-down, not a modal)."""

    vm: str


@dataclass(frozen=True)
class ExportForm:
    """Write `vm`'s disks at a recovery point into a folder (as srlab export does)."""

    vm: str
    point: str = "latest"


@dataclass(frozen=True)
class FaultForm:
    """Inject a fault of `kind` (as srlab fault inject does): its target, how long, how much."""

    kind: str


@dataclass(frozen=True)
class WorkloadForm:
    """Set `vm`'s guest write rate (its churn), as srlab vm workload does."""

    vm: str


@dataclass(frozen=True)
class RunForForm:
    """Advance lab time by a duration the user types (as srlab run --for does)."""


@dataclass(frozen=True)
class CommandOutput:
    """What a `:` command printed, and its exit code (0 done, 1 refused, 2 bad input)."""

    line: str
    code: int
    out: str
    err: str


DialogRequest = Union[Confirm, ProtectForm, TargetForm, CloudProtectionForm, MapNetworkForm, LinkForm, FailoverForm,
                      ChangePointForm, CompleteForm, VmDetails, ExportForm, RunForForm, CommandOutput, FaultForm,
                      WorkloadForm, CreatePolicyForm, AssociatePolicyForm, DeployProcessServerForm, ReprotectForm]


# ---- recovery plans (their dialogs are in tui.plan_dialogs) -------------------------------------


@dataclass(frozen=True)
class PlanCreateForm:
    """Create a recovery plan: its name, where from and to, its VMs (all in group 1), an RTO target."""


@dataclass(frozen=True)
class PlanVmsForm:
    """Add protected VMs to `plan`, into `group`."""

    plan: str
    group: int = 1


@dataclass(frozen=True)
class PlanActionForm:
    """Add a manual action or a script before or after one of `plan`'s groups."""

    plan: str
    group: int = 1


@dataclass(frozen=True)
class PlanFailoverForm:
    """Fail `plan` over as one job: `kind` is test, planned or unplanned (a planned one of a plan
    whose VMs run at the recovery side is its failback). The dialog offers the other kinds,
    greyed with the engine's reason when they are not allowed."""

    plan: str
    kind: str


DialogRequest = Union[DialogRequest, PlanCreateForm, PlanVmsForm, PlanActionForm, PlanFailoverForm]


# ---- the host ------------------------------------------------------------------------------


@runtime_checkable
class Host(Protocol):
    """The app as panels and dialogs see it (besides Textual's own App API)."""

    state: LabState
    status_colors: dict[str, str]
    observer: bool
    busy_action: str
    # VM -> the latest proof the app ran on it (Lab.verify or Lab.export's result, with "what")
    proofs: dict[str, dict]

    def observer_reason(self) -> str: ...

    def refresh_state(self) -> None: ...

    def header_text(self) -> tuple[Text, Text]: ...

    def prove(self, vm: str, what: str, point: Any, out_dir: str | None = None) -> None: ...

    def refresh_bindings(self) -> None: ...

    def engine_call(
        self,
        label: str,
        fn: Callable[[Lab], Any] | None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        mutates: bool = True,
        quiet: bool = False,
    ) -> None: ...

    def show_dialog(self, request: DialogRequest, callback: Callable[[Any], None] | None = None) -> None: ...


def host_of(node: DOMNode) -> Host:
    """The app `node` runs in, as a Host."""
    return cast(Host, node.app)


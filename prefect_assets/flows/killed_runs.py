"""Flow runs whose process was killed end ``Crashed``, not ``Running`` for ever.

A flow run's state lives on the Prefect server and only the process running it moves it on.
Prefect's engine reports ``Crashed`` itself for what it can see (an exception, Ctrl-C,
SIGTERM under a runner), but a process killed outright (SIGKILL, the out-of-memory killer)
says nothing, and the server keeps the run ``Running``. Prefect 3's answer is heartbeats: the
flow engine emits a ``prefect.flow-run.heartbeat`` event every
``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds, and an *automation* (a proactive trigger:
"no heartbeat for a while", action "change state to Crashed") marks the run. The open-source
server has no such automation built in (Prefect Cloud's "unresponsive run detection" is a
managed one); the user creates it. We do not rely on it, because:

- it needs that automation on the server: server-wide state a library should not create
  behind the user's back;
- it judges by silence, after a window of several heartbeat periods (at least Prefect's minimum
  heartbeat frequency each), so the run stays ``Running`` at least that long, and a run that is
  only slow to report is crashed too; with the embedded server it acts only while some later
  process runs an embedded server on the same database.

Instead we ask about the process itself, on the machine that ran it: at once, and without
guessing. Every flow run :func:`~prefect_assets.flows.build.materialize` starts carries two tags
that say which process runs it (:func:`owner_tags`), and every ``materialize`` first asks the
server for ``Running`` or ``Pending`` runs tagged with *this* machine's scope and proposes
``Crashed`` for those whose process is provably gone (:func:`crash_runs_of_ended_processes`):

- ``prefect-assets.scope=<hash>``: this boot of this machine and this PID namespace (Linux boot
  id and ``/proc/self/ns/pid``). Only runs with our scope are judged: a PID means something only
  there. Another machine, another container, a run from before a reboot is never touched
  here; Prefect's heartbeat automation covers those (README, "Guarantees").
- ``prefect-assets.process=<host>:<pid>:<start>``: the process, with its start time in clock
  ticks since boot, so a later process that got the same PID is told apart.

A process counts as ended when its PID does not exist, is a zombie, or belongs to a process
that started at another time. Anything we cannot read counts as alive: a live run is never
crashed. The proposal is Prefect's ordinary orchestration (no ``force``): a run that finished
meanwhile keeps its final state. Its unfinished task runs are crashed with it.

Platforms without ``/proc`` (macOS, Windows) get no tags and no check: the heartbeat
automation is the way there.

The tags are the flow run's only: :func:`without_owner_tags` takes them out of the context in
which the run's task runs are created.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.context import TagsContext
from prefect.states import Crashed

SCOPE_TAG = "prefect-assets.scope="
PROCESS_TAG = "prefect-assets.process="

_UNFINISHED = [StateType.RUNNING, StateType.PENDING]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrashedRun:
    """A flow run marked ``Crashed`` because the process running it had ended."""

    flow_run_id: str
    name: str
    host: str
    pid: int

    def __str__(self) -> str:
        return (f"flow run {self.name} ({self.flow_run_id}) was left Running by a process that is gone "
                f"(pid {self.pid} on {self.host}): marked Crashed")

    @property
    def state_message(self) -> str:
        return (f"The process running this flow run (pid {self.pid} on {self.host}) ended without reporting "
                "a final state (killed?); marked Crashed by prefect-assets.")


def owner_tags() -> tuple[str, ...]:
    """The tags naming this process as the owner of the flow runs it starts; empty where a
    process cannot be identified (no ``/proc``)."""
    scope, started = _machine_scope(), _start_ticks(os.getpid())
    if scope is None or started is None:
        return ()
    return (SCOPE_TAG + scope, f"{PROCESS_TAG}{socket.gethostname()}:{os.getpid()}:{started}")


@contextmanager
def without_owner_tags() -> Iterator[None]:
    """Inside the block, the current Prefect tags minus :func:`owner_tags`' (task runs created
    here are not tagged with the flow run's process)."""
    current = TagsContext.get().current_tags
    kept = {t for t in current if not t.startswith((SCOPE_TAG, PROCESS_TAG))}
    if kept == current:
        yield
        return
    with TagsContext(current_tags=kept):
        yield


def crash_runs_of_ended_processes(client: SyncPrefectClient) -> list[CrashedRun]:
    """Propose ``Crashed`` for this machine's unfinished flow runs whose process has ended.

    Args:
        client: a client of the server to clean up.

    Returns:
        The runs the server accepted as ``Crashed`` (a run that finished meanwhile is not one).
    """
    scope = _machine_scope()
    if scope is None:
        return []
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
        tags=FlowRunFilterTags(all_=[SCOPE_TAG + scope]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_UNFINISHED)),
    ))
    crashed = []
    for run in runs:
        owner = _parse_process_tag(run.tags)
        if owner is None or not _process_ended(owner[1], owner[2]):
            continue
        found = CrashedRun(str(run.id), run.name, owner[0], owner[1])
        result = client.set_flow_run_state(run.id, Crashed(message=found.state_message))
        if result.status == SetStateStatus.ACCEPT:
            _crash_task_runs(client, run.id, found)
            crashed.append(found)
    return crashed


def crash_runs_of_ended_processes_and_report() -> list[CrashedRun]:
    """:func:`crash_runs_of_ended_processes` on the current Prefect API, each run it crashed
    logged as a warning on this module's logger (the CLI prints them).

    A server that cannot be asked is logged too, and does not stop the run that asks: the check
    is housekeeping for earlier runs, and the next run asks again.
    """
    if _machine_scope() is None:
        return []
    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            crashed = crash_runs_of_ended_processes(client)
    except Exception as exc:  # noqa: BLE001 - reported, and retried by the next run
        reason = " ".join(str(exc).split()) or type(exc).__name__
        _log.warning("could not look for flow runs of killed processes: %s", reason)
        return []
    for run in crashed:
        _log.warning("%s", run)
    return crashed


def _crash_task_runs(client: SyncPrefectClient, flow_run_id: UUID, found: CrashedRun) -> None:
    task_runs = client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=_UNFINISHED))),
    )
    for task_run in task_runs:
        client.set_task_run_state(task_run.id, Crashed(message=found.state_message))


def _parse_process_tag(tags: list[str]) -> tuple[str, int, str] | None:
    for tag in tags:
        if tag.startswith(PROCESS_TAG):
            host, pid, started = (tag[len(PROCESS_TAG):].rsplit(":", 2) + ["", ""])[:3]
            if pid.isdigit() and int(pid) > 0 and started.isdigit():
                return host, int(pid), started
    return None


def _process_ended(pid: int, started: str) -> bool:
    """Whether process ``pid`` that started at ``started`` (clock ticks since boot) has provably
    ended; False whenever we cannot tell."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: it exists; its start time may be readable
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return False
    return fields[0] in ("Z", "X") or fields[19] != started  # state; starttime (stat fields 3, 22)


def _start_ticks(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[19] if fields is not None else None


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from its third field (state) on, or None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name in parentheses may hold spaces
    return fields if len(fields) > 19 else None


def _machine_scope() -> str | None:
    """A short hash of this boot and PID namespace, or None where they cannot be read."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot_id}\n{namespace}".encode()).hexdigest()[:12]

"""Everything Prefect kept about a flow run, as text, for tests that look for leaked secrets."""

from __future__ import annotations

import time
from uuid import UUID


def prefect_texts(flow_run_id: str, wait_for: str | None = None, timeout: float = 30) -> list[str]:
    """The flow run, its task runs, logs and artifacts, each as JSON text.

    Logs and task runs reach the server a moment after the run ends (batched, through events),
    so when ``wait_for`` is given this waits until some log line contains it.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs of an in-process run are still batched here
    run_id = UUID(flow_run_id)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + timeout
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            if wait_for is None or any(wait_for in log.message for log in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert wait_for is None or any(wait_for in log.message for log in logs), f"no log line with {wait_for!r}"
        flow_run = client.read_flow_run(run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    assert artifacts, "the run has no summary artifact"
    return [item.model_dump_json() for item in (flow_run, *task_runs, *logs, *artifacts)]

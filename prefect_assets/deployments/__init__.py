"""Deployments and schedules: put a project's assets on a Prefect server.

- :mod:`.spec` reads and validates ``deployments/*.yaml`` (no server needed);
- :mod:`.build` turns a spec into Prefect schedules and a ``RunnerDeployment`` of the one
  module-level flow :func:`prefect_assets.flows.entry.materialize_assets`;
- :mod:`.serve` serves deployments from this process or registers them for a work pool;
- :mod:`.run` triggers a run and follows it; :mod:`.server` turns server trouble into
  one-line errors.

The CLI's ``serve``, ``deploy`` and ``run`` commands are thin wrappers around these.
"""

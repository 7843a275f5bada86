"""One run of a task as both dispatchers make it: ``run_job`` with the task id in every log
record and the run counted in the metrics."""

from __future__ import annotations

import time

from midiscribe.service import metrics
from midiscribe.service.logs import task_context
from midiscribe.service.records import tasks
from midiscribe.service.work.jobs import JobContext, run_job


def run_observed(ctx: JobContext, task_id: str) -> str:
    with task_context(task_id):
        started = time.monotonic()
        outcome = run_job(ctx, task_id)
        if outcome != "not-claimed":  # a duplicate message for a task someone else holds: no run
            audio_s = None
            if outcome == "completed":
                row = tasks.get_task(ctx.engine, task_id)
                audio_s = row.duration_s if row is not None else None
            metrics.observe_task(outcome, time.monotonic() - started, audio_s)
        return outcome

"""Running work: the job itself (run_job), the embedded worker pool, Celery, and dispatching tasks."""

"""The HTTP service: API, workers, storage, webhooks."""

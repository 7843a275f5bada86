"""The outside world: fetching URLs, object stores (local, S3) and webhook delivery."""

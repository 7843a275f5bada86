"""The pure core: samples (or a file) in, notes out. Knows nothing of HTTP, queues or storage."""

"""Alembic migrations of the service's database (run by ``midiscribe.service.records.migrate``)."""

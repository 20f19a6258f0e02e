"""Durable jobs: the queue (rows in the metadata database), executors (local processes now), the worker loop."""

"""Serving: real-time services (a supervisor process, replica processes with dynamic batching, canary traffic,
Prometheus metrics) and batch inference jobs. Heavy imports stay inside the modules that need them."""

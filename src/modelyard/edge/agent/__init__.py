"""The device agent (``modelyard-agent``): activation, long-poll, reconcile desired -> actual with A/B slots,
verified bundles, queued reports. Imports only ``modelyard.core``, ``modelyard.runtime`` and ``modelyard.edge.skills``
so a device installs little."""

AGENT_VERSION = "1"

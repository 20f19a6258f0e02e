"""Edge AI, platform side: devices and twins (``devices``), signed bundles (``bundles``), OTA deployments with canary
and rollback (``rollouts``). ``agent/`` is the device process; it imports only core, runtime and edge.skills."""

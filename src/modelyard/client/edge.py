"""``client.edge``: the device fleet, signed bundles and OTA deployments.

Example::

    device = client.edge.register("cam-1", {"site": "plant-3"})      # device["activation_code"], shown once
    bundle = client.edge.package("detector@3", "cpu-x86")
    deployment = client.edge.deploy(bundle["id"], selector={"site": "plant-3"}, canary=1)
    client.edge.deployment(deployment["id"])["devices"]               # per-device state machine
"""

from __future__ import annotations

from urllib.parse import quote


class Edge:
    def __init__(self, client):
        self._c = client

    # devices
    def register(self, name: str, labels: dict | None = None, activation_ttl_s: int = 24 * 3600) -> dict:
        return self._c.request("POST", "/api/v1/edge/devices", json={
            "name": name, "labels": labels or {}, "activation_ttl_s": activation_ttl_s}).json()

    def devices(self, selector: dict | None = None) -> dict:
        text = ",".join(f"{k}={v}" for k, v in (selector or {}).items())
        return self._c.get_json("/api/v1/edge/devices", params={"selector": text})

    def twin(self, device: str) -> dict:
        return self._c.get_json(f"/api/v1/edge/devices/{quote(device, safe='')}")

    def deregister(self, device: str) -> dict:
        return self._c.request("DELETE", f"/api/v1/edge/devices/{quote(device, safe='')}").json()

    def action(self, device: str, kind: str, skill: str | None = None) -> dict:
        return self._c.request("POST", f"/api/v1/edge/devices/{quote(device, safe='')}/actions",
                               json={"kind": kind, "skill": skill}).json()

    def logs(self, device: str, tail: int = 200) -> dict:
        return self._c.get_json(f"/api/v1/edge/devices/{quote(device, safe='')}/logs", params={"tail": tail})

    def alarms(self, device: str | None = None, include_acknowledged: bool = False) -> dict:
        params = {"all": include_acknowledged}
        if device:
            params["device"] = device
        return self._c.get_json("/api/v1/edge/alarms", params=params)

    def ack(self, alarm_id: str) -> dict:
        return self._c.request("POST", f"/api/v1/edge/alarms/{quote(alarm_id, safe='')}/ack").json()

    # events and hard examples
    def events(self, device: str, *, channel: str | None = None, skill: str | None = None, offset: int = 0,
               limit: int = 50) -> dict:
        params = {"offset": offset, "limit": limit}
        params.update({k: v for k, v in (("channel", channel), ("skill", skill)) if v is not None})
        return self._c.get_json(f"/api/v1/edge/devices/{quote(device, safe='')}/events", params=params)

    def event_thumbnail(self, event_id: str) -> bytes:
        return self._c.request("GET", f"/api/v1/edge/events/{quote(event_id, safe='')}/thumbnail").content

    def hard_examples(self, device: str, *, channel: str | None = None, offset: int = 0, limit: int = 50) -> dict:
        params = {"offset": offset, "limit": limit}
        if channel is not None:
            params["channel"] = channel
        return self._c.get_json(f"/api/v1/edge/devices/{quote(device, safe='')}/hard-examples", params=params)

    # bundles
    def package(self, model: str, target: str, *, int8: bool = True, prune: bool = True,
                max_accuracy_drop: float = 0.01, calibration: str | None = None, wait: bool = True,
                timeout: float | None = None, on_update=None) -> dict:
        """Package ``model`` for ``target`` as an ``edge.package`` job. ``wait`` (default): wait for it and return
        the bundle (a failed job raises ``ModelyardError``); otherwise return the queued job."""
        spec = {"model": model, "target": target, "int8": int8, "prune": prune,
                "max_accuracy_drop": max_accuracy_drop, "calibration": calibration}
        if not wait:
            return self._c.request("POST", "/api/v1/edge/bundles", json=spec).json()
        jobs = self._c.jobs
        return jobs.result(jobs.run("edge.package", spec, timeout=timeout, on_update=on_update))

    def package_skill(self, skill: str, version: str | None = None, target: str = "cpu-x86") -> dict:
        return self._c.request("POST", "/api/v1/edge/skill-bundles", json={
            "skill": skill, "version": version, "target": target}).json()

    def bundles(self) -> dict:
        return self._c.get_json("/api/v1/edge/bundles")

    def bundle(self, bundle_id: str) -> dict:
        return self._c.get_json(f"/api/v1/edge/bundles/{quote(bundle_id, safe='')}")

    # deployments
    def deploy(self, bundle: str, *, device: str | None = None, selector: dict | None = None,
               group: str | None = None, canary: int | None = None, canary_percent: float | None = None,
               gate: dict | None = None, config: dict | None = None, skill: str = "inference",
               channels: dict | None = None) -> dict:
        body = {"bundle": bundle, "device": device, "selector": selector, "group": group, "canary": canary,
                "canary_percent": canary_percent, "gate": gate or {}, "config": config or {}, "skill": skill,
                "channels": channels or {}}
        return self._c.request("POST", "/api/v1/edge/deployments", json=body).json()

    def deployments(self) -> dict:
        return self._c.get_json("/api/v1/edge/deployments")

    def deployment(self, deployment_id: str) -> dict:
        return self._c.get_json(f"/api/v1/edge/deployments/{quote(deployment_id, safe='')}")

    def cancel(self, deployment_id: str) -> dict:
        return self._c.request("POST", f"/api/v1/edge/deployments/{quote(deployment_id, safe='')}/cancel").json()

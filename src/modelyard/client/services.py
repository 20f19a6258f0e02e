"""``client.services``: deploy model versions as real-time services and manage them; ``predict`` calls one.

Example::

    client.services.deploy("resnet@production", name="resnet", replicas=2)        # waits until it serves
    client.services.predict("resnet", {"pixel_values": batch})                   # numpy in, numpy out
    client.services.predict("pc", {"island": [["Biscoe"]], "body_mass_g": [[4200]]})  # ["predictions"]: classes
    client.services.traffic("resnet", {"resnet@3": 90, "resnet@4": 10})
    client.services.rollback("resnet")
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from modelyard.client._http import raise_for
from modelyard.core.errors import ModelyardError


class DeployFailed(ModelyardError):
    code = "deploy_failed"
    status = 409


class Services:
    def __init__(self, client):
        self._c = client

    def deploy(self, model: str, name: str | None = None, *, backend: str = "auto", replicas: int = 1,
               max_batch: int = 16, max_wait_ms: float = 5.0, instances: int = 2, port: int = 0,
               host: str = "127.0.0.1", public: bool = False, follow_alias: bool = True, wait: bool = True,
               timeout: float = 300.0, placement: str = "local") -> dict:
        """Deploy ``model`` (``N@V``/``N@alias``/``N``); with ``wait``, until the new revision serves.

        A service deployed from an alias follows it (moving the alias rolls the service to the new version) unless
        ``follow_alias`` is False. ``placement="ray"`` runs the replicas on the Ray cluster of ``ray_address``.

        Raises:
            DeployFailed: the revision could not start (the message says why and what keeps serving).
        """
        body = {"model": model, "name": name, "backend": backend, "replicas": replicas, "max_batch": max_batch,
                "max_wait_ms": max_wait_ms, "instances": instances, "port": port, "host": host, "public": public,
                "follow_alias": follow_alias, "placement": placement}
        service = self._c.request("POST", "/api/v1/services", json=body).json()
        return self.wait(service["name"], service["revision"], timeout) if wait else service

    def wait(self, name: str, revision: int | None = None, timeout: float = 300.0, poll_s: float = 0.25) -> dict:
        """Poll until ``revision`` (default: the newest) is live with every replica ready, or failed."""
        deadline = time.monotonic() + timeout
        while True:
            service = self.get(name)
            wanted = revision or service["revision"]
            entry = next((r for r in service["revisions"] if r["revision"] == wanted), None)
            if entry is not None and entry["status"] == "failed":
                live = service["live_revision"]
                still = (f"; revision {live} ({', '.join(t['ref'] for t in service['traffic'])}) keeps serving"
                         if live else "")
                raise DeployFailed(f"service {name} revision {wanted} failed: {entry['message']}{still}")
            if (entry is not None and entry["status"] == "live" and service["status"] == "ready"
                    and service["healthy_replicas"] >= service["replicas"]):
                return service
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {name} revision {wanted} not serving after {timeout:.0f}s "
                                   f"(status {service['status']}: {service['message']})")
            time.sleep(poll_s)

    def list(self) -> dict:
        return self._c.get_json("/api/v1/services")

    def get(self, name: str) -> dict:
        return self._c.get_json(f"/api/v1/services/{quote(name)}")

    def scale(self, name: str, replicas: int) -> dict:
        return self._c.request("POST", f"/api/v1/services/{quote(name)}/scale", json={"replicas": replicas}).json()

    def stop(self, name: str) -> dict:
        return self._c.request("POST", f"/api/v1/services/{quote(name)}/stop").json()

    def start(self, name: str, wait: bool = True, timeout: float = 300.0) -> dict:
        """Start a stopped service on its live revision; with ``wait``, until every replica is ready (as deploy)."""
        service = self._c.request("POST", f"/api/v1/services/{quote(name)}/start").json()
        return self.wait(name, service["revision"], timeout) if wait else service

    def delete(self, name: str) -> dict:
        """Delete a service, stopping it first when it runs (``stopped`` in the answer says so)."""
        return self._c.request("DELETE", f"/api/v1/services/{quote(name)}").json()

    def traffic(self, name: str, weights: dict[str, float], wait: bool = True, timeout: float = 300.0) -> dict:
        service = self._c.request("PUT", f"/api/v1/services/{quote(name)}/traffic", json={"traffic": weights}).json()
        return self.wait(name, service["revision"], timeout) if wait else service

    def rollback(self, name: str, revision: int | None = None, wait: bool = True, timeout: float = 300.0) -> dict:
        service = self._c.request("POST", f"/api/v1/services/{quote(name)}/rollback",
                                  json={"revision": revision}).json()
        return self.wait(name, service["revision"], timeout) if wait else service

    def logs(self, name: str, source: str = "events", replica: int | None = None, lines: int = 200) -> str:
        params = {"source": source, "lines": lines}
        if replica is not None:
            params["replica"] = replica
        return self._c.request("GET", f"/api/v1/services/{quote(name)}/logs", params=params).text

    def metrics(self, name: str) -> str:
        """The service's Prometheus metrics text."""
        return self._c.request("GET", f"/api/v1/services/{quote(name)}/metrics").text

    def predict_body(self, name: str, body: bytes, content_type: str, key: str | None = None,
                     input_name: str | None = None, threshold: float | None = None) -> dict:
        """POST a ready-made body (JSON text, .npy, safetensors or image bytes) through the platform's proxy and
        return the JSON answer (a detector's: ``{"detections": [{"box", "score", "class"}], "model"}``, boxes
        scoring at least ``threshold`` when given); a 4xx/5xx raises with the service's message."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if key is not None:
            headers["X-Modelyard-Key"] = key
        params = {"input": input_name} if input_name else {}
        if threshold is not None:
            params["threshold"] = str(threshold)
        response = self._c._http.request("POST", f"/api/v1/services/{quote(name)}/predict", content=body,
                                         headers=headers, params=params or None)
        raise_for(response)
        return response.json()

    def predict(self, name: str, inputs, key: str | None = None) -> dict:
        """Run one request. ``inputs`` maps input names to numpy arrays or nested lists (text inputs take
        strings); a single-input model also takes the array itself, and the REST body ``{"inputs": {...}}`` is
        taken as it is (the SDK adds that wrapper itself). All-numpy inputs travel as safetensors, others as JSON.

        Returns:
            ``{"outputs": {name: ndarray}, "model": "N@V"}``, plus ``"predictions"`` (one ``{"index", "class",
            "score"}`` per row) when the version names its classes.

        Example::

            client.services.predict("pc", {"island": [["Biscoe"]], "bill_length_mm": [[46.5]], ...})
        """
        import json

        import numpy as np

        if isinstance(inputs, dict) and set(inputs) <= {"inputs", "key"} and "inputs" in inputs \
                and not isinstance(inputs["inputs"], np.ndarray):
            key = key if key is not None else inputs.get("key")
            inputs = inputs["inputs"]  # a REST body: unwrap, rather than send {"inputs": {"inputs": ...}}
        headers = {"Accept": "application/x-safetensors"}
        if key is not None:
            headers["X-Modelyard-Key"] = str(key)
        url = f"/api/v1/services/{quote(name)}/predict"
        if isinstance(inputs, dict) and inputs and all(isinstance(v, np.ndarray) and v.dtype.kind not in "USO"
                                                       for v in inputs.values()):
            from safetensors.numpy import save

            content = save({k: np.ascontiguousarray(v) for k, v in inputs.items()})
            headers["Content-Type"] = "application/x-safetensors"
            response = self._c._http.request("POST", url, content=content, headers=headers)
        else:
            response = self._c._http.request("POST", url, json={"inputs": _jsonable(inputs)}, headers=headers)
        raise_for(response)
        from safetensors.numpy import load

        answer = {"outputs": dict(load(response.content)), "model": response.headers.get("x-modelyard-model")}
        metadata = _safetensors_metadata(response.content)
        if "predictions" in metadata:
            answer["predictions"] = json.loads(metadata["predictions"])
        return answer

    def predict_file(self, name: str, path: str | Path, input_name: str | None = None, key: str | None = None,
                     threshold: float | None = None) -> dict:
        """Send a file as it is: ``.json`` (the JSON body), ``.npy``, ``.safetensors`` or a PNG/JPEG image
        (``threshold``: a detector's score threshold for this request)."""
        from modelyard.core.errors import InvalidInput

        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}")
        types = {".json": "application/json", ".npy": "application/x-npy", ".safetensors": "application/x-safetensors",
                 ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
        content_type = types.get(path.suffix.lower())
        if content_type is None:
            raise InvalidInput(f"{path.name}: send .json, .npy, .safetensors, .png or .jpg")
        return self.predict_body(name, path.read_bytes(), content_type, key, input_name, threshold)


def _jsonable(value):
    """Nested lists for JSON (numpy arrays, text arrays included, become lists)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _safetensors_metadata(body: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file's JSON header (empty when there is none)."""
    import json

    size = int.from_bytes(body[:8], "little")
    try:
        return json.loads(body[8:8 + size]).get("__metadata__") or {}
    except (ValueError, AttributeError):
        return {}

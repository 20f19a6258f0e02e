"""``client.skills``: the skill market.

Example::

    client.skills.list()                       # [{"name": "ocr", "version": "1.0", ...}, ...]
    client.skills.show("ocr")                  # manifest, models with hashes, size, license, figures
    client.skills.measure("sentiment")         # self-check + latency on the server's machine
    client.skills.publish("./my_skill")        # a folder with skill.yaml and logic.py
    client.skills.deploy("sentiment")          # a service, with the lifecycle of client.services
    client.skills.call("sentiment", {"text": "Great!"})  # {"skill", "version", "events", "latency_ms"}
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from modelyard.core.errors import InvalidInput


class Skills:
    def __init__(self, client):
        self._c = client

    def list(self) -> list[dict]:
        return self._c.get_json("/api/v1/skills")["skills"]

    def show(self, name: str, version: str | None = None) -> dict:
        params = {"version": version} if version else None
        return self._c.get_json(f"/api/v1/skills/{quote(name)}", params=params)

    def measure(self, name: str) -> dict:
        return self._c.request("POST", f"/api/v1/skills/{quote(name)}/measure").json()

    def publish_template(self, template: str, name: str, model: str, *, version: str = "1.0",
                         input_size: tuple[int, int] = (320, 320)) -> dict:
        """A code-free skill: a registered ONNX detector plus ``zone-count``, ``line-crossing`` or ``class-seen``."""
        body = {"template": template, "name": name, "model": model, "version": version, "input_size": list(input_size)}
        return self._c.request("POST", "/api/v1/skills/templates", json=body).json()

    def publish(self, folder: str | Path) -> dict:
        folder = Path(folder)
        files = {key: folder / filename for key, filename in (("manifest", "skill.yaml"), ("logic", "logic.py"))}
        for path in files.values():
            if not path.is_file():
                raise InvalidInput(f"{folder} is not a skill folder: {path.name} is missing")
        body = {key: path.read_text() for key, path in files.items()}
        return self._c.request("POST", "/api/v1/skills", json=body).json()

    def deploy(self, name: str, service: str | None = None, *, version: str | None = None, replicas: int = 1,
               config: dict | None = None, port: int = 0, host: str = "127.0.0.1", public: bool = False,
               wait: bool = True, timeout: float = 300.0) -> dict:
        """Deploy the market skill ``name`` as a service (default name: the skill's); with ``wait``, until it
        serves. Its REST API (``{"text": ...}`` and the like) answers at the service's ``/v1/predict``.

        Raises:
            DeployFailed: the revision could not start (the message says why and what keeps serving).
        """
        body = {"version": version, "service": service, "replicas": replicas, "config": config or {}, "port": port,
                "host": host, "public": public}
        made = self._c.request("POST", f"/api/v1/skills/{quote(name)}/deploy", json=body).json()
        return self._c.services.wait(made["name"], made["revision"], timeout) if wait else made

    def call(self, service: str, body: dict) -> dict:
        """Call a skill service through the platform (``/api/v1/services/S/predict``) with the skill's JSON body
        (``{"text"}``, ``{"image_b64"}``, ``{"wav_b64"}``...); a 4xx/5xx raises with the service's message."""
        import json

        return self._c.services.predict_body(service, json.dumps(body).encode(), "application/json")

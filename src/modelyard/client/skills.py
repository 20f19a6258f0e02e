"""``client.skills``: the skill market.

Example::

    client.skills.list()                       # [{"name": "ocr", "version": "1.0", ...}, ...]
    client.skills.show("ocr")                  # manifest, models with hashes, size, license, figures
    client.skills.measure("sentiment")         # self-check + latency on the server's machine
    client.skills.publish("./my_skill")        # a folder with skill.yaml and logic.py
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

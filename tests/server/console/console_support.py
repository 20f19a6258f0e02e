"""Helpers the console tests share (a plain module, so no conftest.py can shadow it)."""

from __future__ import annotations

import re

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client, secret: str):
    page = client.get("/login")
    answer = client.post("/login", data={"token": secret, "csrf": csrf_of(page.text), "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client

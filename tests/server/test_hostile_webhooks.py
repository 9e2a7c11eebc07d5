"""Signed webhook bodies of any shape get a 4xx answer, never a 500; the server stays up."""

from __future__ import annotations

import json

import pytest

from tests.support.server import Served, sign


def _deliver(served: Served, body: bytes, *, event: str = "push",
             content_type: str = "application/json") -> int:
    with served.client() as client:
        res = client.post("/hooks/github", content=body, headers={
            "Content-Type": content_type, "X-GitHub-Event": event,
            "X-Hub-Signature-256": sign(body)})
        if res.status_code >= 400:   # every refusal carries its error object
            assert res.json()["error"]["code"] == {400: "bad-request", 413: "too-large"}[
                res.status_code], res.text
        return res.status_code


BODIES = {
    "nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "nested repository": b'{"repository": ' + b'{"x":' * 20_000 + b"1" + b"}" * 20_001,
    "deep full_name": b'{"repository": {"full_name": ' + b"[" * 900 + b"]" * 900 + b"}}",
    "array": b"[1, 2, 3]",
    "string": b'"push"',
    "null": b"null",
    "number": b"1e999999",
    "long integer": b"9" * 100_000,
    "repository is a list": b'{"repository": ["hwlab"]}',
    "name is an object": b'{"repository": {"name": {"x": 1}, "full_name": 7}}',
    "not utf-8": b'{"repository": "\xff\xfe"}',
    "not json": b"{repository: hwlab",
    "empty": b"",
}


@pytest.mark.parametrize("shape", sorted(BODIES))
def test_a_signed_odd_body_is_answered_4xx(served: Served, shape: str) -> None:
    status = _deliver(served, BODIES[shape])
    assert status == 400, status
    with served.client() as client:
        assert client.get("/healthz").status_code == 200


def test_odd_bodies_in_a_row_leave_the_server_working(served: Served) -> None:
    statuses = [_deliver(served, body) for body in BODIES.values()]
    assert all(s == 400 for s in statuses), statuses
    form = b"payload=" + b"%5B" * 50_000
    assert _deliver(served, form, content_type="application/x-www-form-urlencoded") == 400
    # Events nobody declared do not grow the metric labels.
    for i in range(20):
        body = json.dumps({"repository": {"name": "nothing"}}).encode()
        assert _deliver(served, body, event=f"made-up-{i}") == 202
    with served.client() as client:
        metrics = client.get("/metrics").text
        assert "made-up-" not in metrics
        body = json.dumps({"repository": {"name": "hwlab"}}).encode()
        res = client.post("/hooks/github", content=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-Hub-Signature-256": sign(body)})
        assert res.status_code == 202 and res.json()["repositories"] == ["hwlab"]


def test_a_body_past_the_limit_is_413(served: Served) -> None:
    from git_mirror.server.webhooks import MAX_BODY

    body = b"[" + b"1," * ((MAX_BODY // 2) + 10) + b"1]"
    assert _deliver(served, body) == 413

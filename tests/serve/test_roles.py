"""Roles, rate limits, one retrain at a time, and the HTTP details of issue 12 (items 6 and 12)."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from fusionrec.errors import UserError
from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker, load_api_keys

from .conftest import make_service

READ, WRITE, ADMIN = "r" * 20, "w" * 20, "a" * 20
KEYS = {READ: "read", WRITE: "write", ADMIN: "admin"}


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_item_6_keys_carry_roles_from_env_and_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEYS", f"{ADMIN}:admin, {READ}:read ,{WRITE}")
    f = tmp_path / "keys.txt"
    f.write_text("# ops\n" + "y" * 32 + ":write\n")
    assert load_api_keys("MY_KEYS", f) == {ADMIN: "admin", READ: "read", WRITE: "write", "y" * 32: "write"}
    monkeypatch.setenv("MY_KEYS", f"{ADMIN}:root")
    with pytest.raises(UserError, match="role"):
        load_api_keys("MY_KEYS", None)


def test_item_6_roles_decide_what_a_key_may_do(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path)
    client = TestClient(create_app(svc, KeyChecker(KEYS)))
    user = next(iter(world.user_theme))
    item = next(iter(world.item_theme))
    event = {"events": [{"user_id": "role-user", "item_id": item}]}
    # reads are not public unless the operator says so
    assert client.get(f"/recommendations/{user}").status_code == 401
    assert client.get(f"/users/{user}/profile").status_code == 401
    for key in (READ, WRITE, ADMIN):
        assert client.get(f"/recommendations/{user}", headers=_h(key)).status_code == 200
    r = client.post("/events", json=event, headers=_h(READ))
    assert r.status_code == 403 and "write" in r.json()["error"], r.text
    assert client.post("/events", json=event, headers=_h(WRITE)).status_code == 200
    assert client.delete("/users/role-user", headers=_h(WRITE)).status_code == 403
    assert client.post("/admin/retrain", headers=_h(WRITE)).status_code == 403
    assert client.get("/admin/retrain", headers=_h(READ)).status_code == 403
    assert client.delete("/users/role-user", headers=_h(ADMIN)).status_code == 200
    # health is public and shows no filesystem path
    h = client.get("/health")
    assert h.status_code == 200 and "model_dir" not in h.json()
    assert str(model_dir) not in h.text and str(tmp_path) not in h.text
    svc.close()
    public = make_service(model_dir, tmp_path / "p", public_reads=True)
    c = TestClient(create_app(public, KeyChecker(KEYS)))
    assert c.get(f"/recommendations/{user}").status_code == 200
    assert c.post("/events", json=event).status_code == 401
    public.close()


def test_item_6_rate_limits_answer_429_with_retry_after(model_dir, tmp_path, world):
    svc = make_service(model_dir, tmp_path, rate_limits={"read": 2.0, "failed_auth": 1.0, "burst_seconds": 3.0})
    client = TestClient(create_app(svc, KeyChecker(KEYS)))
    user = next(iter(world.user_theme))
    codes = [client.get(f"/recommendations/{user}", headers=_h(READ)).status_code for _ in range(12)]
    assert codes[:6] == [200] * 6 and 429 in codes, codes
    r = client.get(f"/recommendations/{user}", headers=_h(READ))
    assert r.status_code == 429 and float(r.headers["Retry-After"]) >= 1, r.headers
    # another key has its own bucket
    assert client.get(f"/recommendations/{user}", headers=_h(WRITE)).status_code == 200
    # wrong-key guesses are throttled by client address
    guesses = [client.get(f"/recommendations/{user}", headers=_h("g" * 20 + str(n))).status_code
               for n in range(30)]
    assert guesses[0] == 401 and guesses.count(429) >= 20, guesses
    svc.close()


def test_item_6_one_retrain_at_a_time(model_dir, tmp_path):
    svc = make_service(model_dir, tmp_path)
    gate = threading.Event()

    def slow_retrain(service):
        gate.wait(30)
        return service.state

    svc.retrain_fn = slow_retrain
    client = TestClient(create_app(svc, KeyChecker(KEYS)))
    assert client.post("/admin/retrain", headers=_h(ADMIN)).status_code == 202
    r = client.post("/admin/retrain", headers=_h(ADMIN))
    assert r.status_code == 409 and "already running" in r.json()["error"], r.text
    gate.set()
    deadline = time.time() + 30
    while client.get("/admin/retrain", headers=_h(ADMIN)).json()["running"] and time.time() < deadline:
        time.sleep(0.05)
    assert client.post("/admin/retrain", headers=_h(ADMIN)).status_code == 202
    svc.close()


def test_item_12_key_is_checked_before_the_body_is_parsed(model_dir, tmp_path):
    svc = make_service(model_dir, tmp_path)
    client = TestClient(create_app(svc, KeyChecker(KEYS)))
    r = client.post("/events", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    r = client.post("/events", content=b"x" * 100, headers={"content-type": "application/json",
                                                            "content-length": str(10**9)})
    assert r.status_code == 401, r.text
    svc.close()


def test_item_12_options_answers_with_allow(model_dir, tmp_path):
    svc = make_service(model_dir, tmp_path)
    client = TestClient(create_app(svc, KeyChecker(KEYS)))
    r = client.options("/events")
    assert r.status_code == 204 and "POST" in r.headers["Allow"] and "OPTIONS" in r.headers["Allow"]
    assert set(client.options("/users/x").headers["Allow"].split(", ")) == {"DELETE", "OPTIONS"}
    assert client.options("/nowhere").status_code == 404
    r = client.put("/events", headers=_h(ADMIN))
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    svc.close()


def test_item_12_openapi_documents_every_error_response(model_dir, tmp_path):
    svc = make_service(model_dir, tmp_path)
    spec = create_app(svc, KeyChecker(KEYS)).openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            ok = [c for c in codes if c.startswith("2")]
            assert ok, (method, path)
            if path != "/metrics":
                assert all("$ref" in str(op["responses"][c]["content"]["application/json"]["schema"])
                           for c in ok), (method, path)
            if path in ("/health", "/metrics"):
                continue
            assert {"401", "403", "429"} <= codes, (method, path, codes)
            if method in ("post",) and "requestBody" in op:
                assert {"400", "413", "422"} <= codes, (method, path, codes)
    assert spec["components"]["securitySchemes"]
    svc.close()

"""Acceptance 4: schemathesis-generated requests from the OpenAPI spec never get a server error.

Runs in-process (ASGI) with a bounded number of examples per operation, with a
valid API key (so generated bodies reach the handlers instead of stopping at 401),
and checks ``not_a_server_error`` plus the JSON content type of the answers.
``bench/serve_load.py --schemathesis`` runs the same check against a live
loopback server.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY


@pytest.fixture(scope="module")
def app(model_dir, tmp_path_factory, encoder):
    from .conftest import make_service

    svc = make_service(model_dir, tmp_path_factory.mktemp("schemathesis"), encoder=encoder)
    svc.retrain_fn = None  # POST /admin/retrain answers 409 instead of starting a training thread
    return create_app(svc, KeyChecker([API_KEY]))


def test_openapi_spec_is_complete(app):
    spec = app.openapi()
    paths = spec["paths"]
    for path, method in [("/recommendations/{user_id}", "get"), ("/recommendations", "post"),
                         ("/items/{item_id}/similar", "get"), ("/events", "post"), ("/items", "post"),
                         ("/explain/{user_id}/{item_id}", "get"), ("/users/{user_id}/profile", "get"),
                         ("/items/{item_id}", "get"), ("/users/{user_id}", "delete"), ("/health", "get"),
                         ("/metrics", "get")]:
        assert method in paths[path], (path, method)
    k = [p for p in paths["/recommendations/{user_id}"]["get"]["parameters"] if p["name"] == "k"][0]
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 1000


def test_no_server_error_on_generated_requests(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    n_calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            nonlocal n_calls
            n_calls += 1
            headers = {**(case.headers or {}), "X-API-Key": API_KEY}
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as err:  # schemathesis raises a failure group describing the problem
                failures.append(f"{case.method} {case.formatted_path}: {err}")

        operation.as_strategy()  # fail early if an operation cannot be turned into requests
        from hypothesis import given

        given(operation.as_strategy())(run)()
    assert n_calls > 50
    assert not failures, "\n".join(failures[:10])

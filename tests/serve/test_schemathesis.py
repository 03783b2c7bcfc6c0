"""API fuzz: schemathesis requests from the OpenAPI spec, every check on (conformance included).

Runs in-process (ASGI), bounded so it takes well under a minute: ``FUSIONREC_FUZZ_EXAMPLES``
examples per operation and generation mode (positive: requests the spec allows; negative: ones
it forbids), with an admin key so generated bodies reach the handlers. All of schemathesis's
checks run on every response: no server error, status codes, content types, headers and bodies
as documented, spec-valid data accepted and spec-invalid data rejected, auth not ignored.

One deviation is declared, not hidden: some inputs are valid by the schema and still
unprocessable (a filter naming an unknown column, an item whose image does not decode or
whose content no encoder can read, an anonymous request with neither items nor text), so
``positive_data_acceptance`` also accepts 422/413 on exactly those operations.

A longer run (the docs' command)::

    FUSIONREC_FUZZ_EXAMPLES=800 python -m pytest -q tests/serve/test_schemathesis.py
"""
from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from fusionrec.serve.app import create_app
from fusionrec.serve.security import KeyChecker

from .conftest import API_KEY

EXAMPLES = int(os.environ.get("FUSIONREC_FUZZ_EXAMPLES", "8"))
SEMANTIC_422 = [("POST", "^/items$"), ("POST", "^/recommendations$"), ("GET", "^/recommendations/"),
                ("GET", "/similar$")]
DEFAULT_ACCEPT = ["2xx", "3xx", "401", "403", "404", "409", "429"]


@pytest.fixture(scope="module")
def app(model_dir, tmp_path_factory, encoder):
    from .conftest import make_service

    svc = make_service(model_dir, tmp_path_factory.mktemp("schemathesis"), encoder=encoder,
                       rate_limits={"read": 0, "write": 0, "admin": 0, "failed_auth": 0},
                       retrain_after_forget=False)
    svc.retrain_fn = None  # POST /admin/retrain answers 409 instead of starting a training thread
    yield create_app(svc, KeyChecker({API_KEY: "admin"}))
    svc.close()


def _config() -> SchemathesisConfig:
    operations = [{"include-method": method, "include-path-regex": path,
                   "checks": {"positive_data_acceptance": {"expected-statuses": [*DEFAULT_ACCEPT, "413", "422"]}}}
                  for method, path in SEMANTIC_422]
    return SchemathesisConfig.from_dict({"operations": operations})


def test_openapi_spec_is_complete(app):
    spec = app.openapi()
    paths = spec["paths"]
    for path, method in [("/recommendations/{user_id}", "get"), ("/recommendations", "post"),
                         ("/items/{item_id}/similar", "get"), ("/events", "post"), ("/items", "post"),
                         ("/explain/{user_id}/{item_id}", "get"), ("/users/{user_id}/profile", "get"),
                         ("/items/{item_id}", "get"), ("/users/{user_id}", "delete"), ("/health", "get"),
                         ("/metrics", "get")]:
        assert method in paths[path], (path, method)
    k = next(p for p in paths["/recommendations/{user_id}"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 1000
    event_type = spec["components"]["schemas"]["EventIn"]["properties"]["type"]
    assert set(event_type["enum"]) == {"view", "click", "like", "cart", "purchase", "rating"}


def test_every_check_passes_on_generated_requests(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())
    failures: list[str] = []
    n_calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                nonlocal n_calls
                n_calls += 1
                headers = {**(case.headers or {}), "X-API-Key": API_KEY}
                try:
                    response = case.call(headers=headers)
                    case.validate_response(response, headers=headers)
                except Exception as err:  # noqa: BLE001 -- collect every failure (a group) to report them all
                    # run() is called in this iteration, so `mode` is this iteration's
                    failures.append(f"{mode.value} {case.method} {case.formatted_path}: {str(err)[:700]}")  # noqa: B023

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: e.g. GET /health has no inputs
    assert n_calls > 100
    assert not failures, "\n\n".join(failures[:8])

"""Schemathesis against the OpenAPI spec on a real server: no server errors on any generated
input, and every operation refuses a request without a valid token."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from tests.server.conftest import Served


def test_no_server_errors_and_no_access_without_a_token(served: Served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/api/openapi.json", headers=served.auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    # The streams never end for a live session; they are exercised by the UI test.
    checked = [op for op in operations if not op.path.endswith("/stream")]
    assert len(checked) >= 10
    calls = 0
    for op in checked:

        @given(case=op.as_strategy())
        @settings(max_examples=30, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            for headers, expect in (({}, 401), ({"Authorization": "Bearer tth_forged"}, 401), (served.auth, None)):
                response = case.call(base_url=served.url, headers=headers, timeout=10)
                assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:300])
                if expect is not None:
                    assert response.status_code == expect, (case.method, case.formatted_path, response.status_code)

        check()
    assert calls >= 10 * len(checked)

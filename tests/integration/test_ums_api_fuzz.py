"""Schemathesis against the API's own OpenAPI spec, in-process: no request may cause a 5xx.

One test per operation (so xdist spreads them), each with a few valid (positive) and invalid
(negative) generated requests sent by a user holding every role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from amiup.ums import inventory
from amiup.ums.api import create_app
from amiup.ums.models import ROLES
from reqmark import req
from support_ums import NOW, add_user, make_store

# The spec does not depend on the store, so operations can be listed at collection time.
_SPEC: dict[str, Any] = create_app(None).openapi()  # type: ignore[arg-type]
OPERATIONS = sorted(f"{m.upper()} {p}" for p, item in _SPEC["paths"].items() for m in item)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str]]:
    """(operations by label, all-roles token) over one seeded SQLite store per worker."""
    gen = make_store("sqlite", tmp_path_factory.mktemp("fuzz"))
    store = next(gen)
    token = add_user(store, "fuzz", list(ROLES))
    with store.session() as db:
        inventory.upsert_meter(db, serial="M1", model="X", components={"ami_comm": "1.0.0"},
                               now=NOW, actor="t")
        inventory.create_group(db, name="g", members=["M1"], now=NOW, actor="t")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(store, clock=lambda: NOW))
    ops = {f"{o.method.upper()} {o.path}": o for o in (r.ok() for r in schema.get_all_operations())}
    yield ops, token
    next(gen, None)


@req("SEC-4", "UMS-1", "UMS-2", "UMS-11")
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_server_errors_for_generated_requests(api: tuple[dict[str, Any], str],
                                                 label: str) -> None:
    ops, token = api
    op = ops[label]
    headers = {"Authorization": f"Bearer {token}"}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=4, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Unsatisfiable:  # nothing invalid to generate (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, label

"""The API against its own description: schemathesis drives a real gateway
from ``/openapi.json`` and fails on any 5xx and on any answer the document
does not describe (status, content type, headers, body schema).

Selected with ``-m contract``; it is part of the default run (and of CI).
The run is bounded: a fixed seed, deterministic generation, a few examples
per operation, and a time bound on the whole run. It is authenticated as
the owner of a tenant it may not delete: the operations that would end
the run's own session or tenant are left out.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.support.tenants import new_account, new_tenant

pytestmark = pytest.mark.contract

#: Operations that would break the run: they end its session or its tenant.
EXCLUDED = ("delete_tenant", "logout", "logout_all")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
#: Seconds the whole run may take before it counts as a failure (a guard, not a measure).
RUN_BOUND = 240


def _config(token: str, tenant_id: str) -> str:
    """schemathesis.toml: the owner's credentials, and its tenant wherever one is named."""
    return f"""
seed = 20261207
workers = 2
request-timeout = 10
max-stream-events = 3
headers = {{ Authorization = "Bearer {token}", X-Tenant-Id = "{tenant_id}" }}

[generation]
max-examples = 3
deterministic = true
database = "none"

[parameters]
"path.tenant_id" = "{tenant_id}"
"""


async def test_every_operation_answers_as_the_document_says(
    serve: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> None:
    server = await serve()
    owner = await new_account(server)
    tenant = await new_tenant(server, owner)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(owner.token, tenant["id"]))
    command = [
        str(Path(sys.executable).with_name("st")),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(server.make_url("/openapi.json")),
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-with-security-parameters",
        "false",
        *(option for name in EXCLUDED for option in ("--exclude-operation-id", name)),
    ]
    run = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path
    )
    try:
        output, _ = await asyncio.wait_for(run.communicate(), RUN_BOUND)
    except TimeoutError:
        run.kill()
        pytest.fail(f"schemathesis did not finish within {RUN_BOUND}s")
    print(output.decode())
    assert run.returncode == 0, output.decode()

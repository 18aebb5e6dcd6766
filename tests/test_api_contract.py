"""The API against its own description, ``/openapi.json`` of a real gateway.

- schemathesis drives every operation and fails on any 5xx and on any
  answer the document does not describe (status, content type, headers,
  body schema). The run is bounded: a fixed seed, deterministic
  generation, a few examples per operation, and a time bound on the whole
  run. It is authenticated as the owner of a tenant it may not delete: the
  operations that would end the run's own session or tenant are left out.
- openapi-python-client generates a client from the document, and that
  client alone signs in, makes a tenant, a conversation and a message.

Selected with ``-m contract``; part of the default run (and of CI).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.support.accounts import PASSWORD, unique_email
from tests.support.tenants import new_account, new_tenant

pytestmark = pytest.mark.contract

#: Operations that would break the run: they end its session or its tenant
#: (schemathesis reuses ids it has seen in answers, its own session's too).
EXCLUDED = ("delete_tenant", "logout", "logout_all", "delete_session")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
#: Seconds the whole run may take before it counts as a failure (a guard, not a measure).
RUN_BOUND = 240
#: The generated client's package name.
CLIENT = "hubbub_generated_client"


def _config(tenant_id: str) -> str:
    """schemathesis.toml: a few deterministic examples, the tenant wherever one is named.

    One worker: with two, hypothesis' lambda descriptions parse source in two
    threads at once, which CPython 3.11's AST constructor does not survive.
    """
    return f"""
seed = 20261207
workers = 1
request-timeout = 10
max-stream-events = 3

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
    config.write_text(_config(tenant["id"]))
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
        "--header",
        f"Authorization: Bearer {owner.token}",
        "--header",
        f"X-Tenant-Id: {tenant['id']}",
        *(option for name in EXCLUDED for option in ("--exclude-operation-id", name)),
    ]
    returncode, output = await _run(command, tmp_path)
    assert returncode == 0, output


@pytest.fixture
async def client_package(
    serve: Callable[..., Awaitable[TestServer]], tmp_path: Path
) -> AsyncIterator[tuple[TestServer, ModuleType]]:
    """A gateway, and the client openapi-python-client generated from its
    /openapi.json, imported."""
    server = await serve()
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.make_url("/openapi.json")) as response,
    ):
        (tmp_path / "openapi.json").write_bytes(await response.read())
    # No post-generation hooks: the client is imported, not kept, so it need not be formatted.
    (tmp_path / "generator.yaml").write_text("post_hooks: []\n")
    command = [
        str(Path(sys.executable).with_name("openapi-python-client")),
        "generate",
        "--path",
        str(tmp_path / "openapi.json"),
        "--config",
        str(tmp_path / "generator.yaml"),
        "--output-path",
        str(tmp_path / CLIENT),
        "--meta",
        "none",
        "--fail-on-warning",
    ]
    returncode, output = await _run(command, tmp_path)
    assert returncode == 0, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield server, importlib.import_module(CLIENT)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == CLIENT]:
            del sys.modules[name]


async def test_a_generated_client_signs_in_and_sends_a_message(
    client_package: tuple[TestServer, ModuleType],
) -> None:
    server, package = client_package
    api = _submodules(
        package,
        "api.auth.register",
        "api.auth.login",
        "api.tenants.create_tenant",
        "api.conversations.create_conversation",
        "api.conversations.send_message",
        "api.conversations.list_messages",
        "models",
    )
    models = api["models"]
    base_url = str(server.make_url("")).rstrip("/")
    anonymous = package.Client(base_url=base_url)
    email = unique_email("generated")
    account = models.NewAccount(email=email, password=PASSWORD, name="Generated")
    registered = await api["api.auth.register"].asyncio_detailed(client=anonymous, body=account)
    assert registered.status_code == 201, registered.content

    signed_in = await api["api.auth.login"].asyncio(
        client=anonymous, body=models.Credentials(email=email, password=PASSWORD)
    )
    assert isinstance(signed_in, models.AuthTokens), signed_in
    me = package.AuthenticatedClient(base_url=base_url, token=signed_in.access_token)

    tenant = await api["api.tenants.create_tenant"].asyncio(
        client=me, body=models.NewTenant(name=f"Generated {uuid.uuid4().hex[:8]}")
    )
    assert isinstance(tenant, models.TenantView), tenant
    # The generator hands a header's value to httpx as is, and httpx takes only
    # text: the uuid-typed X-Tenant-Id goes in as the text of the tenant's id.
    in_tenant = str(tenant.id)

    new_conversation = models.NewConversation(
        kind=models.NewConversationKind.GROUP, title="Made by a generated client"
    )
    conversation = await api["api.conversations.create_conversation"].asyncio(
        client=me, body=new_conversation, x_tenant_id=in_tenant
    )
    assert isinstance(conversation, models.ConversationView), conversation

    message = models.NewMessage(body="hello from the document", client_msg_id=uuid.uuid4().hex)
    sent = await api["api.conversations.send_message"].asyncio(
        conversation.id, client=me, body=message, x_tenant_id=in_tenant
    )
    assert isinstance(sent, models.MessageView), sent
    assert sent.body == "hello from the document"

    page = await api["api.conversations.list_messages"].asyncio(
        conversation.id, client=me, x_tenant_id=in_tenant
    )
    assert isinstance(page, models.MessageList), page
    assert [item.id for item in page.items] == [sent.id]


def _submodules(package: ModuleType, *names: str) -> dict[str, ModuleType]:
    return {name: importlib.import_module(f"{package.__name__}.{name}") for name in names}


async def _run(command: list[str], cwd: Path) -> tuple[int, str]:
    """``(exit status, output)`` of ``command``; fails the test past RUN_BOUND seconds."""
    run = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd
    )
    try:
        output, _ = await asyncio.wait_for(run.communicate(), RUN_BOUND)
    except TimeoutError:
        run.kill()
        await run.wait()
        pytest.fail(f"{Path(command[0]).name} did not finish within {RUN_BOUND}s")
    return run.returncode or 0, output.decode(errors="replace")

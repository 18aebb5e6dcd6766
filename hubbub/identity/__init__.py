"""Identity: accounts, login sessions, access tokens and their signing keys.

- ``passwords``: argon2id hashing, off the event loop.
- ``keys``: Ed25519 signing keys shared through Postgres, and the key ring.
- ``tokens``: access JWTs (EdDSA, ``kid``), issued and verified.
- ``users`` / ``sessions``: the queries behind accounts and sessions.
- ``bearer``: who a request or a socket is, from its access token.
- ``sign_in``: the last step of every way in: a session and the token answer.
- ``totp`` / ``two_factor`` / ``two_factor_api``: TOTP two-factor authentication
  with recovery codes and login challenges.
- ``standing`` / ``staff`` / ``staff_api``: bans and locks by platform staff,
  and the staff audit log.
- ``revocation``: sockets of revoked sessions are disconnected on every gateway.
- ``wire`` / ``api``: the HTTP shapes and routes under ``/api/v1/auth``.
- ``mail_tokens`` / ``letters`` / ``recovery``: single-use tokens sent by
  mail, the mails' text, and the email-verification and password routes.
- ``login_guard``: login rate limits and the temporary lockout.
- ``plugin``: how identity joins a gateway (built in).
"""

from typing import Any

from hubbub.identity.revocation import REVOCATIONS_TOPIC, REVOKED_EVENT, Revocation
from hubbub.identity.staff import AUDIT_INSERT, audit_row

# The public face other capabilities use: an audit row committed with their
# own change (the tenant entity's staff plan changes), and the bus message that
# drops a revoked API key's sockets (the tenant entity publishes it after commit).
__all__ = ["AUDIT_INSERT", "audit_row", "key_revoked_message"]


def key_revoked_message(key_id: str) -> tuple[str, str, dict[str, Any]]:
    """``(topic, event, data)`` that makes every gateway drop the sockets of API key
    ``key_id`` (``auth:revoked`` with code ``api_key_revoked``)."""
    revocation = Revocation(session_ids=(key_id,), code="api_key_revoked")
    return REVOCATIONS_TOPIC, REVOKED_EVENT, revocation.to_wire()

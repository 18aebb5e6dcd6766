"""Identity: accounts, login sessions, access tokens and their signing keys.

- ``passwords``: argon2id hashing, off the event loop.
- ``keys``: Ed25519 signing keys shared through Postgres, and the key ring.
- ``tokens``: access JWTs (EdDSA, ``kid``), issued and verified.
- ``users`` / ``sessions``: the queries behind accounts and sessions.
- ``bearer``: who a request or a socket is, from its access token.
- ``wire`` / ``api``: the HTTP shapes and routes under ``/api/v1/auth``.
- ``plugin``: how identity joins a gateway (built in).
"""

__all__: list[str] = []

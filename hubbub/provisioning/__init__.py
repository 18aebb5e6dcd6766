"""Async signup: ``POST /api/v1/auth/signup/async`` and the job kind
``tenant.provision`` that creates the account and its tenant on a Ray
worker, followed over an unguessable, expiring SSE link, which opens the
account's first session when it delivers the job's success.

Who owns the job: no one can be its creator's tenant yet, so every
provisioning job lives in the reserved tenant scope :data:`SIGNUP_JOBS`, of
which no one is a member. Its ``created_by`` is the account it creates (id
chosen up front). So the job answers 404 on every ``/jobs`` route, for the
new tenant's members too; the only way to it is the stream link returned by
the signup.
"""

from uuid import UUID

__all__ = ["PROVISION", "SIGNUP_JOBS"]

#: The tenant scope of every provisioning job (no tenant has this id).
SIGNUP_JOBS = UUID("00000000-0000-7000-8000-5197a9000001")
#: The job kind's name.
PROVISION = "tenant.provision"

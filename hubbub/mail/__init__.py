"""Mail: an outbox in Postgres and a delivery loop in every gateway.

- ``outbox``: a :class:`~hubbub.mail.outbox.Mail` is inserted in the same
  transaction as the change that causes it; rows are claimed, marked sent,
  retried with backoff or given up.
- ``sender``: SMTP through aiosmtplib (``HUBBUB_SMTP_URL``), or the log when
  no server is configured (the zero-setup default).
- ``delivery``: the loop each gateway runs (a start hook), and the
  :data:`~hubbub.mail.delivery.MAIL` key requests wake it through.
"""

__all__: list[str] = []

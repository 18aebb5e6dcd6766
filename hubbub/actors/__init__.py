"""The entity framework: entities hosted by shard actors on Ray.

Ownership — each piece of mutable state has exactly one owner; everyone
else sends it commands. Keep this table true.

| state                                        | owner                                   |
|----------------------------------------------|-----------------------------------------|
| an entity's state (seq, members, marks, ...) | that entity, inside its shard's host    |
| an entity's idempotency receipts             | the shard host, per active entity       |
| a shard's lease epoch                        | the shard host (row in ``shard_leases``)|
| activation, mailboxes, commit/publish queues | the shard host                          |
| batches bound for a shard, batch numbering   | the gateway's router (one per gateway)  |
| a process's metric values                    | its event loop (``hubbub/metrics.py``): |
|                                              | a gateway's or a shard actor's; read at |
|                                              | scrape on the same loop, never locked   |
| when a fenced shard was last restarted       | the router's ``Fencing`` (``fencing.py``)|
| sockets, their rooms and watched topics      | the gateway holding them (``Realtime``) |
| the Redis subscription of a gateway (one for | its ``Fanout`` (``realtime/fanout.py``),|
| committed events) and each topic's route     | owned by its ``Realtime``               |
| a durable stream's head on a gateway, its    | that topic's ``SeqStream``              |
| queue and its repair task                    | (``hubbub/realtime/seq_stream.py``)     |
| a tenant's profile, plan, roster, invites,   | its ``TenantEntity``                    |
| usage counters, API keys (service accounts)  | (``hubbub/tenancy/entity.py``)          |
| a conversation's seq, title, members, roles, | its ``ConversationEntity``              |
| read marks, mute/star, messages, reactions,  | (``hubbub/chat/entity.py``; rules in    |
| support status, snooze, assignee, labels,    | ``hubbub/chat/rules.py`` and            |
| deletion                                     | ``state.py``)                           |
| which local sockets get which conversation,  | the gateway's ``ConversationRooms``     |
| which joins are in flight, which tenant each | (``hubbub/chat/rooms.py``)              |
| joined conversation is in                    |                                         |
| a socket's typing indicators (deadline,      | the socket's gateway: its               |
| last relay)                                  | ``TypingRelay`` (``hubbub/chat/typing.py``) |
| a job's status, attempts, cancel request,    | its ``JobEntity``                       |
| progress, step, counters, result, error, seq | (``hubbub/jobs/entity.py``; rules in    |
|                                              | ``hubbub/jobs/state.py``)               |
| a running job's unsent reports and its       | the run on its Ray worker: its          |
| cancelled flag                               | ``JobContext`` (``hubbub/jobs``)        |
| a broadcast's status and its recipients'     | the broadcast's ``broadcast.send`` run  |
| statuses (pending → sent / failed)           | and, for a cancel (pending → cancelled),|
|                                              | the gateway: conditional SQL writes in  |
|                                              | ``hubbub/broadcasts/ledger.py``         |
| an assistant reply being written (its text   | its ``agent.reply`` run on a Ray worker |
| so far, the next ``message:delta`` index)    | (``hubbub/agent/reply.py``); committed  |
|                                              | by the conversation entity              |
| which local SSE streams and sockets follow   | the gateway's ``JobFeeds`` and          |
| which job, their last seqs, whose they are   | ``JobSubscriptions`` (``hubbub/jobs``)  |
| and whether their access was revoked         |                                         |
| an async signup's filed password hash and   | its ``account_signups`` / ``signup_streams`` |
| stream links (and whether a link handed     | rows: filed by the gateway, the hash    |
| out the account's tokens)                    | dropped by its ``tenant.provision`` run,|
|                                              | a link claimed by the stream that first |
|                                              | delivers the success (conditional SQL;  |
|                                              | ``hubbub/provisioning``)                |
| an export file (written once, then only      | the export run that writes it           |
| read through signed links)                   | (``hubbub/exports/job.py``)             |
| the export link key file (``.link-key``)     | created once by whichever process needs |
|                                              | it first (``hubbub/exports/links.py``)  |
| a user's presence (devices, status, text,    | Redis, changed only by atomic scripts   |
| availability, last_seen_at, idle); a         | of ``Presence`` (``realtime/presence.py``); |
| gateway's presence lease and its sockets     | each gateway its own lease and sockets  |
| login failure counts, locks and known        | Redis, changed only by ``LoginGuard``   |
| devices (hashed device tokens)               | (``hubbub/identity/login_guard.py``)    |
| a gateway's started services (db, Redis,     | its ``create_app`` (``gateway.py``),    |
| router, bus) handed to start hooks           | as one ``Services`` (``services.py``)   |

Ray appears only in ``runtime.py``.
"""

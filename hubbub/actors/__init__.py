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
| sockets, their rooms and watched topics      | the gateway holding them (``Realtime``) |
| the Redis subscription of a gateway          | its ``Fanout``                          |
| a tenant's profile, plan, roster, invites,   | its ``TenantEntity`` (``tenant.py``);   |
| usage counters, API keys (service accounts)  | see ``hubbub/tenancy/__init__.py``      |
| a conversation's seq, title, members, roles, | its ``ConversationEntity``              |
| read marks and messages                      | (``conversation.py``; ``hubbub/chat``)  |
| which local sockets get which conversation,  | the gateway's ``ConversationRooms``     |
| their replay buffers and floors              | (``hubbub/chat/rooms.py``)              |

Ray appears only in ``runtime.py``.
"""

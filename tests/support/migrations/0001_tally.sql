-- The test entity kind's table (tests/support/tally.py).
CREATE TABLE tally_entries (
  tally     text    NOT NULL,
  seq       integer NOT NULL,
  tenant_id uuid,
  amount    bigint  NOT NULL,
  sender    text,
  PRIMARY KEY (tally, seq)
);
SELECT hubbub_enable_tenant_rls('tally_entries');

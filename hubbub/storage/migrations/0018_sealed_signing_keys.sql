-- Token signing keys sealed at rest (hubbub/identity/keys.py): the private key
-- is stored as hubbub.identity.sealing writes secrets, a first byte saying
-- plain (0) or sealed (1, AES-256-GCM under HUBBUB_TWO_FACTOR_KEY). Existing
-- PEM keys become plain secrets here; a gateway with the key seals them in
-- place at start-up. Depends on 0002.
ALTER TABLE signing_keys
  ALTER COLUMN private_key TYPE bytea USING '\x00'::bytea || convert_to(private_key, 'UTF8');

-- An async signup's tokens are no longer part of its job: the stream link
-- that first delivers the job's success opens the account's session then
-- and hands that one client the tokens (hubbub/provisioning/signups.py).
-- Depends on 0011, 0015.

-- When the link handed out its tokens; a link does so once.
ALTER TABLE signup_streams ADD COLUMN claimed_at timestamptz;

-- Results written before this migration held the account's bearer tokens:
-- drop them from the jobs and their final events (the links that carried
-- them expire within HUBBUB_SIGNUP_STREAM_MINUTES anyway; their accounts log in).
UPDATE jobs
   SET result = result - 'access_token' - 'refresh_token' - 'token_type' - 'expires_in'
 WHERE kind = 'tenant.provision' AND result ? 'refresh_token';
UPDATE job_events e
   SET data = jsonb_set(e.data, '{result}', (e.data -> 'result') - 'access_token'
       - 'refresh_token' - 'token_type' - 'expires_in')
  FROM jobs j
 WHERE j.id = e.job_id AND j.kind = 'tenant.provision' AND e.type = 'status'
   AND e.data -> 'result' ? 'refresh_token';

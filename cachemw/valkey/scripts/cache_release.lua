-- Give up a fill lock without storing, optionally leaving a hit-for-pass marker.
-- KEYS[1] the variant's lock key, KEYS[2] the URL's hash
-- ARGV[1] token from cache_lock, ARGV[2] hit-for-pass time-to-live in ms (0: none),
-- ARGV[3] wake-up channel
-- Returns 1 when the lock was still ours.
local released = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  released = 1
end
local pass_ms = tonumber(ARGV[2])
if pass_ms > 0 then
  -- The response was not storable: the next burst goes straight to the origin instead of
  -- queueing behind a leader whose answer it could not use.
  redis.call('HSET', KEYS[2], 'p', '1')
  redis.call('HPEXPIRE', KEYS[2], pass_ms, 'FIELDS', 1, 'p')
  if redis.call('PTTL', KEYS[2]) < pass_ms then
    redis.call('PEXPIRE', KEYS[2], pass_ms)
  end
end
redis.call('PUBLISH', ARGV[3], KEYS[1])
return released

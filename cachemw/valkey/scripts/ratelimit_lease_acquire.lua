-- Concurrency limit: take one of ARGV[1] in-flight slots for ARGV[2] microseconds.
-- KEYS[1] a sorted set of leases scored by their expiry on the server clock, so a holder
-- that crashed without releasing frees its slot when the lease runs out.
-- ARGV[3] the lease id (unique per request): a retried call holds one slot, not two.
-- Reply: {admitted, in_flight, retry_after_us (until the earliest lease expires; 0 if admitted)}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local max_in_flight = tonumber(ARGV[1])
local lease_us = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  return {1, redis.call('ZCARD', KEYS[1]), 0}
end
local in_flight = redis.call('ZCARD', KEYS[1])
if in_flight >= max_in_flight then
  local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, in_flight, tonumber(earliest[2]) - now}
end
redis.call('ZADD', KEYS[1], now + lease_us, ARGV[3])
-- every lease has the same length, so the newest one decides when the set may go
redis.call('PEXPIRE', KEYS[1], math.ceil(lease_us / 1000))
return {1, in_flight + 1, 0}

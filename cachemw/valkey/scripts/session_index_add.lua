-- Add a session to its user's index (a sorted set scored by the session's absolute expiry).
-- KEYS[1] the user's index
-- ARGV[1] member ('tag:digest:added_ms' is built here from ARGV[1] 'tag:digest')
-- ARGV[2] the session's absolute expiry (ms epoch, '' = now + ARGV[3])
-- ARGV[3] absolute lifetime (ms)
-- Returns {absolute expiry used, member}. Entries past their absolute expiry are pruned on
-- every add, and the index itself expires with its longest-lived session, so it never
-- outlives what it points to.
local index = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local absolute = tonumber(ARGV[2]) or (now + tonumber(ARGV[3]))
local member = ARGV[1] .. ':' .. now
redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
redis.call('ZADD', index, absolute, member)
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return {absolute, member}

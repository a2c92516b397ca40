-- Add URL hashes to one tag's index set, keeping the set alive as long as its members.
-- KEYS[1] the tag's set, ARGV[1] retention in ms, ARGV[2..] hash key names
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1

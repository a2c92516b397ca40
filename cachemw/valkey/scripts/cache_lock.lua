-- Take the fill lock of one cache variant (single-flight across processes).
-- KEYS[1] lock key
-- ARGV[1] caller nonce, ARGV[2] lock time-to-live in ms
-- Returns {1, token} when taken, {0, remaining ms} when another leader holds it.
-- The token starts with the server's clock in microseconds: a fencing token that grows
-- with every acquisition of the key's slot, so a store can refuse an older leader's write.
local now = redis.call('TIME')
local token = string.format('%d%06d', now[1], now[2]) .. ':' .. ARGV[1]
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then
  return {1, token}
end
return {0, redis.call('PTTL', KEYS[1])}

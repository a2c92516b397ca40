-- Take the fill lock of one cache variant (single-flight across processes).
-- KEYS[1] lock key, KEYS[2] the URL's hash
-- ARGV[1] caller nonce, ARGV[2] lock time-to-live in ms,
-- ARGV[3] the variant's fence field, ARGV[4] the fence the caller read ('' for none)
-- Returns {1, token} when taken, {0, remaining ms} when another leader holds it, and
-- {2, 0} when the variant was stored again since the caller read it (nothing to do).
-- The token starts with the server's clock in microseconds: a fencing token that grows
-- with every acquisition of the key's slot, so a store can refuse an older leader's write.
local current = redis.call('HGET', KEYS[2], ARGV[3]) or ''
if current ~= ARGV[4] then
  return {2, 0}
end
local now = redis.call('TIME')
local token = string.format('%d%06d', now[1], now[2]) .. ':' .. ARGV[1]
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then
  return {1, token}
end
return {0, redis.call('PTTL', KEYS[1])}

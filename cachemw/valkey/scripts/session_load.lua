-- Load one session and slide its idle expiry, in one round trip.
-- KEYS[1] the session hash
-- ARGV[1] idle timeout (ms)   ARGV[2] refresh throttle (ms)
-- Returns nil when there is no live session, else {expires_at_ms, {field, value, ...}}.
-- The refresh is a single PEXPIREAT, and only when it would move the expiry by at least the
-- throttle: at most one write per throttle period, never a rewrite of the data.
local key = KEYS[1]
local data = redis.call('HGETALL', key)
if #data == 0 then
  return false
end
local expires = redis.call('PEXPIRETIME', key)
-- '@a' from the reply already in hand (HGETALL's flat name/value list): no second read.
local absolute = nil
for i = 1, #data, 2 do
  if data[i] == '@a' then
    absolute = tonumber(data[i + 1])
    break
  end
end
if absolute then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now >= absolute then
    -- Past its absolute lifetime (the key's own expiry is capped there; this is the backstop).
    redis.call('DEL', key)
    return false
  end
  local target = math.min(now + tonumber(ARGV[1]), absolute)
  if expires < 0 or target - expires >= tonumber(ARGV[2]) then
    redis.call('PEXPIREAT', key, target)
    expires = target
  end
end
-- A hash without '@a' is returned as is: the client treats it as corrupt.
return {expires, data}

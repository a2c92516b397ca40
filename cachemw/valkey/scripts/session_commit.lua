-- Commit one request's session changes atomically: create, update or rotate.
-- KEYS[1] the session hash; KEYS[2] the new hash when rotating (same hash tag)
-- ARGV[1] mode: 'create' | 'update' | 'rotate'
-- ARGV[2] generation the request loaded ('' when creating)
-- ARGV[3] idle timeout (ms)  ARGV[4] refresh throttle (ms)  ARGV[5] absolute lifetime (ms)
-- ARGV[6] absolute expiry to use when creating (ms epoch, '' = now + lifetime)
-- ARGV[7] max session bytes
-- ARGV[8] user action: '' keep, 'set', 'unset'   ARGV[9] user id for 'set'
-- ARGV[10] n = number of fields to set, then n field/value pairs, then fields to delete.
-- Returns {1, generation, expires_at_ms} on success, {0} when the session is gone or was
-- rotated (the write is dropped: it never resurrects a logged-out session), {-1} when the
-- session would exceed its size cap, {-2} when the target key already exists.
local mode = ARGV[1]
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local generation, absolute, size
if mode == 'create' then
  if redis.call('EXISTS', key) == 1 then
    return {-2}
  end
  generation = 1
  absolute = tonumber(ARGV[6]) or (now + tonumber(ARGV[5]))
  size = 0
else
  local meta = redis.call('HMGET', key, '@g', '@a', '@b')
  if meta[1] ~= ARGV[2] then
    return {0}
  end
  generation = tonumber(meta[1])
  absolute = tonumber(meta[2])
  size = tonumber(meta[3]) or 0
  if not absolute or now >= absolute then
    return {0}
  end
  if mode == 'rotate' and redis.call('EXISTS', KEYS[2]) == 1 then
    return {-2}
  end
end

-- Size accounting before any write: field name + value bytes of user fields.
local n = tonumber(ARGV[10])
local first_delete = 11 + 2 * n
local delta = 0
for i = 11, 10 + 2 * n, 2 do
  local old = 0
  if mode ~= 'create' then
    old = redis.call('HSTRLEN', key, ARGV[i])
  end
  if old > 0 then
    delta = delta - #ARGV[i] - old
  end
  delta = delta + #ARGV[i] + #ARGV[i + 1]
end
if mode ~= 'create' then
  for i = first_delete, #ARGV do
    local old = redis.call('HSTRLEN', key, ARGV[i])
    if old > 0 then
      delta = delta - #ARGV[i] - old
    end
  end
end
size = size + delta
if size > tonumber(ARGV[7]) then
  return {-1}
end

for i = 11, 10 + 2 * n, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
for i = first_delete, #ARGV do
  redis.call('HDEL', key, ARGV[i])
end
if mode == 'create' then
  redis.call('HSET', key, '@c', now, '@a', absolute, '@g', generation, '@b', size)
else
  redis.call('HSET', key, '@b', size)
end
if ARGV[8] == 'set' then
  redis.call('HSET', key, '@u', ARGV[9])
elseif ARGV[8] == 'unset' then
  redis.call('HDEL', key, '@u')
end
if mode == 'rotate' then
  redis.call('RENAME', key, KEYS[2])
  key = KEYS[2]
  generation = generation + 1
  redis.call('HSET', key, '@g', generation)
end

local target = math.min(now + tonumber(ARGV[3]), absolute)
local expires = redis.call('PEXPIRETIME', key)
if mode ~= 'update' or expires < 0 or target - expires >= tonumber(ARGV[4]) then
  redis.call('PEXPIREAT', key, target)
  expires = target
end
return {1, generation, expires}

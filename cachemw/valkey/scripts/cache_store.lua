-- Store one variant of a cached response, fenced by the fill lock's token.
-- KEYS[1] the URL's hash (fields: vary, u, e:<variant>, f:<variant>, p)
-- KEYS[2] the variant's lock key
-- ARGV[1] token from cache_lock, ARGV[2] Vary spec, ARGV[3] variant id,
-- ARGV[4] entry bytes, ARGV[5] retention in ms, ARGV[6] URL (for prefix invalidation),
-- ARGV[7] max variants per URL, ARGV[8] wake-up channel
-- Returns 1 when stored, 0 when refused because a newer leader owns the variant.
local token = ARGV[1]
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= token then
  return 0
end
local fence = string.match(token, '^(%d+)')
local efield = 'e:' .. ARGV[3]
local ffield = 'f:' .. ARGV[3]
local previous = redis.call('HGET', KEYS[1], ffield)
-- Fences are decimal strings of equal width (microseconds since the epoch).
if previous and (#previous > #fence or (#previous == #fence and previous > fence)) then
  if holder then
    redis.call('DEL', KEYS[2])
  end
  redis.call('PUBLISH', ARGV[8], KEYS[2])
  return 0
end
local spec = redis.call('HGET', KEYS[1], 'vary')
if spec and spec ~= ARGV[2] then
  -- RFC 9111 §4.1: variants selected by another Vary spec can no longer be chosen.
  redis.call('DEL', KEYS[1])
  previous = nil
end
if not previous then
  local limit = tonumber(ARGV[7])
  if redis.call('HLEN', KEYS[1]) >= 2 * limit + 3 then
    local sample = redis.call('HRANDFIELD', KEYS[1], 16)
    for _, field in ipairs(sample) do
      if string.sub(field, 1, 2) == 'e:' then
        redis.call('HDEL', KEYS[1], field, 'f:' .. string.sub(field, 3))
        break
      end
    end
  end
end
local ttl = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'vary', ARGV[2], 'u', ARGV[6], efield, ARGV[4], ffield, fence)
redis.call('HDEL', KEYS[1], 'p')
redis.call('HPEXPIRE', KEYS[1], ttl, 'FIELDS', 2, efield, ffield)
local current = redis.call('PTTL', KEYS[1])
if current < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if holder then
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[8], KEYS[2])
return 1

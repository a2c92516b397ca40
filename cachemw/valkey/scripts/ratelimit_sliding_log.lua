-- Sliding log rate limit: exact. One sorted set per window (all under one hash tag), one
-- member per quota unit, scored by the Valkey server's clock (never the app's).
--
-- KEYS[i]   the log of window i
-- ARGV[1]   cost: quota units this request takes (members request_id#1..cost)
-- ARGV[2]   request_id: unique per request; a retried call whose reply was lost finds its
--           members and is answered again without being counted twice
-- ARGV[1+2i], ARGV[2+2i]  limit and length (microseconds) of window i
--
-- All windows admit or none records (a request rejected by any window takes nothing).
-- Reply: {admitted, then per window: used, reset_us, violated}
--   used      units in the window after this call
--   reset_us  microseconds until enough units leave the window to admit this request again
--             (rejected) or until the next unit returns (admitted); 0 for an empty window
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local request_id = ARGV[2]
local n = #KEYS

local function member(i)
  if cost == 1 then return request_id end
  return request_id .. '#' .. i
end

local used, over = {}, {}
local admitted = 1
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  -- An entry scored exactly now - window is one full window old: it no longer counts.
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  used[i] = redis.call('ZCARD', KEYS[i])
  over[i] = used[i] + cost > limit
  if over[i] then admitted = 0 end
end

if admitted == 0 and redis.call('ZSCORE', KEYS[n], member(1)) then
  -- A replay of a call that was admitted: its units are the ones filling the window.
  -- (Checked on this path only: on the admitting path ZADD NX below adds nothing twice.)
  admitted = 1
  for i = 1, n do over[i] = false end
elseif admitted == 1 then
  for i = 1, n do
    local window = tonumber(ARGV[2 + 2 * i])
    -- in batches: unpack() is bounded by the Lua C stack (a few thousand values)
    local c = 1
    while c <= cost do
      local args = {}
      for unit = c, math.min(cost, c + 499) do
        args[#args + 1] = now
        args[#args + 1] = member(unit)
      end
      used[i] = used[i] + redis.call('ZADD', KEYS[i], 'NX', unpack(args))
      c = c + 500
    end
    redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
  end
end

local reply = {admitted}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  -- rank of the entry whose expiry frees enough room: 0 (the oldest) when admitted
  local rank = 0
  if over[i] then rank = used[i] + cost - limit - 1 end
  local reset = 0
  local entry = redis.call('ZRANGE', KEYS[i], rank, rank, 'WITHSCORES')
  if entry[2] then reset = tonumber(entry[2]) + window - now end
  reply[#reply + 1] = used[i]
  reply[#reply + 1] = reset
  reply[#reply + 1] = over[i] and 1 or 0
end
return reply

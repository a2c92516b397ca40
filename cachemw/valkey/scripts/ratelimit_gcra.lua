-- GCRA (generic cell rate algorithm) rate limit: `limit` units per window on average, with
-- bursts of up to `limit` at once. One number per window: the theoretical arrival time
-- (TAT, microseconds on the Valkey server's clock); O(1) memory, exact for its model.
--
-- KEYS[i]    (i <= n) the TAT of window i
-- KEYS[n+1]  this request's replay marker: a retried call whose reply was lost finds it and
--            is answered again without being counted twice
-- ARGV[1]    cost: quota units this request takes
-- ARGV[2]    how long (ms) the replay marker lives
-- ARGV[1+2i], ARGV[2+2i]  limit and length (microseconds) of window i
--
-- All windows admit or none records. Reply: {admitted, then per window: used, reset_us,
-- violated}; reset_us is when this request would conform (rejected) or when the next unit
-- returns (admitted; 0 with the full quota available).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local replay_ms = tonumber(ARGV[2])
local n = #KEYS - 1
local replay = redis.call('EXISTS', KEYS[n + 1]) == 1

local tat, new_tat, over = {}, {}, {}
local admitted = 1
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local interval = window / limit
  tat[i] = math.max(tonumber(redis.call('GET', KEYS[i])) or now, now)
  new_tat[i] = math.ceil(tat[i] + cost * interval)
  -- the burst tolerance is one window: the request conforms if it lands within it
  over[i] = (not replay) and (new_tat[i] - window > now)
  if over[i] then admitted = 0 end
end

local recorded = admitted == 1 and not replay
if recorded then
  for i = 1, n do
    local ttl_ms = math.max(1, math.ceil((new_tat[i] - now) / 1000))
    redis.call('SET', KEYS[i], string.format('%d', new_tat[i]), 'PX', ttl_ms)
  end
  redis.call('SET', KEYS[n + 1], '1', 'PX', replay_ms)
end

local reply = {admitted}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local interval = window / limit
  local current = tat[i]
  if recorded then current = new_tat[i] end
  local remaining = math.floor((now + window - current) / interval)
  if remaining > limit then remaining = limit end
  if remaining < 0 then remaining = 0 end
  local reset = 0
  if over[i] then
    reset = new_tat[i] - window - now
  elseif remaining < limit then
    reset = current - window + (remaining + 1) * interval - now
  end
  reply[#reply + 1] = limit - remaining
  reply[#reply + 1] = math.ceil(math.max(reset, 0))
  reply[#reply + 1] = over[i] and 1 or 0
end
return reply

-- Sliding window counter rate limit (Cloudflare's design): O(1) memory per window. Each
-- window keeps two fixed-window counts in one hash (field = window index); the previous
-- count is weighted by how much of it the sliding window still overlaps. Exact when the
-- previous window's requests were spread evenly; in the worst case (all of them at its
-- very end) any interval of one window length admits less than 2 x limit.
-- Time is the Valkey server's clock.
--
-- KEYS[i]    (i <= n) the counts of window i
-- KEYS[n+1]  this request's replay marker: a retried call whose reply was lost finds it and
--            is answered again without being counted twice
-- ARGV[1]    cost: quota units this request takes
-- ARGV[2]    how long (ms) the replay marker lives
-- ARGV[1+2i], ARGV[2+2i]  limit and length (microseconds) of window i
--
-- All windows admit or none records. Reply: {admitted, then per window: used, reset_us,
-- violated} (used rounded up; reset_us until this request would fit (rejected) or until the
-- current fixed window rolls over (admitted)).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local cost = tonumber(ARGV[1])
local replay_ms = tonumber(ARGV[2])
local n = #KEYS - 1
local replay = redis.call('EXISTS', KEYS[n + 1]) == 1

local index, elapsed, cur, prev, estimate, over = {}, {}, {}, {}, {}, {}
local admitted = 1
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  index[i] = math.floor(now / window)
  elapsed[i] = now - index[i] * window
  cur[i] = tonumber(redis.call('HGET', KEYS[i], tostring(index[i]))) or 0
  prev[i] = tonumber(redis.call('HGET', KEYS[i], tostring(index[i] - 1))) or 0
  estimate[i] = prev[i] * (window - elapsed[i]) / window + cur[i]
  over[i] = (not replay) and (estimate[i] + cost > limit)
  if over[i] then admitted = 0 end
end

if admitted == 1 and not replay then
  for i = 1, n do
    local window = tonumber(ARGV[2 + 2 * i])
    redis.call('HINCRBY', KEYS[i], tostring(index[i]), cost)
    if redis.call('HLEN', KEYS[i]) > 2 then
      for _, field in ipairs(redis.call('HKEYS', KEYS[i])) do
        local f = tonumber(field)
        if f ~= index[i] and f ~= index[i] - 1 then redis.call('HDEL', KEYS[i], field) end
      end
    end
    redis.call('PEXPIRE', KEYS[i], math.ceil(2 * window / 1000))
    estimate[i] = estimate[i] + cost
  end
  redis.call('SET', KEYS[n + 1], '1', 'PX', replay_ms)
end

local reply = {admitted}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  local reset = window - elapsed[i]
  if over[i] then
    if cur[i] + cost <= limit then
      -- this window: wait until the previous count's weight has decayed enough
      local needed = window - (limit - cur[i] - cost) * window / prev[i]
      reset = needed - elapsed[i]
    else
      -- next window: the current count becomes the previous one and decays from there
      local needed = window - (limit - cost) * window / cur[i]
      reset = window - elapsed[i] + math.max(0, needed)
    end
  end
  reply[#reply + 1] = math.ceil(estimate[i])
  reply[#reply + 1] = math.ceil(math.max(reset, 0))
  reply[#reply + 1] = over[i] and 1 or 0
end
return reply

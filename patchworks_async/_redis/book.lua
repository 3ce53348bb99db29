-- Books one send slot: the only way a request of any kind gets to be sent.
-- Global slot k starts at k * I (Redis time). A span holds at most `requests` slot starts,
-- so booking distinct slots is the whole guarantee, whatever the number of processes.
-- How it works: the README, "How the shared limiter works". SLACK_MS (the keys' extra
-- time-to-live, in ms) is put in when the script is loaded.
--
-- KEYS: global, manual, starts, pause_until, global:head (all with the account's hash tag)
-- ARGV: I (global interval, us), span (us),
--       Im (manual interval, us; 0: not a manual call), manual_starts,
--       Is (starts interval, us; 0: no starts bucket), starts,
--       release (an index to give back first, or ''),
--       horizon (the last global index this client saw booked, or 0)
-- Returns {delay_us, index, now_us, top}: send at the start of global slot `index`, that is
-- `delay_us` from now (Redis time); `top` is the last global index booked.
local G, M, S, P, H = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local I, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local Im, Is = tonumber(ARGV[3]), tonumber(ARGV[5])
local function last(key)
  local top = redis.call('ZRANGE', key, -1, -1)[1]
  if top then return tonumber(top) end
  return nil
end
-- A key lives until the end of its last booked slot plus a span (and SLACK_MS): an idle
-- account's keys disappear on their own.
local function expire(key, index)
  redis.call('PEXPIRE', key, d(math.ceil((index * I - now + span) / 1000) + SLACK_MS))
end

-- A caller whose slot fell inside a pause gives it back in the same round trip.
if ARGV[7] ~= '' then
  redis.call('ZREM', G, ARGV[7])
  redis.call('ZREM', M, ARGV[7])
  redis.call('ZREM', S, ARGV[7])
end
-- Forget slots that started more than a span ago: they can no longer share a window
-- with a new booking.
local stale = '(' .. d(math.ceil((now - span) / I))
redis.call('ZREMRANGEBYSCORE', G, '-inf', stale)

local horizon = tonumber(ARGV[8])
if horizon > 0 and (horizon + 1) * I > now and redis.call('EXISTS', H) == 0 then
  -- The account's state is gone (Redis restarted or was flushed: the head lives as long
  -- as the last booking) while this client knows of slots booked up to `horizon`, which
  -- their callers will still use: fence them off for everyone, as a pause that is not
  -- announced (those callers must not book again).
  local fence = math.floor((horizon + 1) * I)  -- floor: ceil(fence / I) is horizon + 1
  if fence > tonumber(redis.call('GET', P) or '0') then
    redis.call('SET', P, d(fence), 'PX', d(math.ceil((fence - now) / 1000) + SLACK_MS))
  end
end
-- Nothing is booked before a pause ends.
local at = math.max(now, tonumber(redis.call('GET', P) or '0'))
-- Manual calls and starts: M and S are sliding logs of the global indices they booked,
-- not grids of their own (a send late in one cell of a manual grid and one early in a
-- later cell can be less than a span apart). Their rules only move `at` later, so a
-- manual call never holds a global slot while it waits for its manual one.
local buckets = {}
if Im > 0 then buckets[#buckets + 1] = {M, Im, tonumber(ARGV[4])} end
if Is > 0 then buckets[#buckets + 1] = {S, Is, tonumber(ARGV[6])} end
for _, bucket in ipairs(buckets) do
  local key, gap, cap = bucket[1], bucket[2], bucket[3]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', stale)
  local previous = last(key)
  if previous then
    -- Paced, with one global slot of slack so that rounding up to the grid cannot drift;
    -- always after the previous booking, so that bookings stay in time order.
    at = math.max(at, previous * I + math.max(gap - I, I))
    -- Exact: at most `cap` send times in any span.
    local oldest = redis.call('ZRANGE', key, -cap, -cap)[1]
    if oldest then at = math.max(at, tonumber(oldest) * I + span) end
  end
end

-- The first free global index >= k: a walk would be linear in the backlog, so check the
-- run [k, top] with ZCOUNT and binary-search it for a hole when it has one. The search
-- reads the ZSET, not H, so a slot given back (or left before a manual booking) is reused;
-- H only records the head, and its presence says that the account's state is intact.
local function first_free(k)
  if not redis.call('ZSCORE', G, d(k)) then return k end
  local top = last(G)
  if redis.call('ZCOUNT', G, d(k), d(top)) == top - k + 1 then return top + 1 end
  local lo, hi = k + 1, top
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZCOUNT', G, d(lo), d(mid)) < mid - lo + 1 then hi = mid else lo = mid + 1 end
  end
  return lo
end

local k = first_free(math.ceil(at / I))
redis.call('ZADD', G, d(k), d(k))
local top = last(G)
expire(G, top)
redis.call('SET', H, d(top + 1), 'PX', d(math.ceil((top * I - now + span) / 1000) + SLACK_MS))
for _, bucket in ipairs(buckets) do
  redis.call('ZADD', bucket[1], d(k), d(k))
  expire(bucket[1], k)
end
return {math.max(0, math.ceil(k * I - now)), k, now, top}

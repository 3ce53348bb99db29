-- KEYS: pause_until. ARGV: seconds (us), the channel. Returns {pause_until_us, now_us}.
-- A pause only ever grows; sleepers on a slot inside it hear of it on the channel.
local stop = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], d(stop), 'PX', d(math.ceil((stop - now) / 1000) + SLACK_MS))
redis.call('PUBLISH', ARGV[2], d(stop) .. ' ' .. d(now))
return {stop, now}

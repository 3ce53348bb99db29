-- KEYS: global, manual, starts. ARGV: the index to give back (an unused booking).
for i = 1, 3 do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1

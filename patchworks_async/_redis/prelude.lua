-- The start of book.lua and pause.lua (_scripts.py puts it in front of each).
-- Numbers given to redis.call are formatted with %d: Lua's own tostring uses %.14g, which
-- would turn a 15-digit index into a rounded exponent.
local function d(x) return string.format('%d', x) end
-- The time is Redis's, in microseconds, never a client's: a skewed clock changes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

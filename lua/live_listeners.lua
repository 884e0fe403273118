#!lua flags=no-writes
--[[
live_listeners: the listeners whose heartbeat has not lapsed (score > now).

KEYS[1] listeners ZSET   lr:listeners (or lr:deliverers: those with a hook)   name -> ms alive until
ARGV[1] how many, at most (> 0)
Replies:
  {name...}   soonest to lapse first
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[1]))

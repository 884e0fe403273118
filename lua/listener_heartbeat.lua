#!lua
--[[
listener_heartbeat: a listener says it is alive until now + ttl (server
clock), or that it stopped (ttl 0). Entries that lapsed are pruned, so the
set holds only listeners alive or just gone.

KEYS[1] listeners ZSET   lr:listeners (or lr:deliverers: those with a hook)   name -> ms alive until
ARGV[1] listener name
ARGV[2] ttl, ms (0: remove the name)
Replies:
  {now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {now}

--[[
listener_heartbeat: a listener says it is alive until now + ttl (server
clock), or that it stopped (ttl 0); one that delivers archives to an
on_archived hook says so in the deliverers set too. Entries that lapsed are
pruned, so each set holds only listeners alive or just gone.

KEYS[1] listeners ZSET    lr:listeners    name -> ms alive until
KEYS[2] deliverers ZSET   lr:deliverers   name -> ms alive until, listeners with a hook
ARGV[1] listener name
ARGV[2] ttl, ms (0: remove the name)
ARGV[3] 1 when the listener delivers to a hook, else 0
Replies:
  {now_ms}
]]
local listenersKey, deliverersKey, name = KEYS[1], KEYS[2], ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('ZADD', listenersKey, now + ttl, name)
else
  redis.call('ZREM', listenersKey, name)
end
if ttl > 0 and ARGV[3] == '1' then
  redis.call('ZADD', deliverersKey, now + ttl, name)
else
  redis.call('ZREM', deliverersKey, name)
end
redis.call('ZREMRANGEBYSCORE', listenersKey, '-inf', now)
redis.call('ZREMRANGEBYSCORE', deliverersKey, '-inf', now)
return {now}

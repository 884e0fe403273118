#!lua flags=no-writes
--[[
delivery_backlog: how much of one bucket waits: pending deliveries, the
creation time of the oldest among the first 100 by next attempt (exact unless
more than 100 deliveries were archived after the oldest one was last retried:
bounded work), dead deliveries and quarantined sweep entries.

KEYS[1] outbox ZSET        lr:{b}:outbox
KEYS[2] outbox bodies      lr:{b}:outbox:d
KEYS[3] dead deliveries    lr:{b}:outbox:dead
KEYS[4] quarantined sweep entries  lr:{b}:quarantine
ARGV    none
Replies:
  {now_ms, pending, oldest_created_ms or -1, dead, quarantined_sessions}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 99)
if #first > 0 then
  for _, raw in ipairs(redis.call('HMGET', KEYS[2], unpack(first))) do
    if raw then
      local created = tonumber(cmsgpack.unpack(raw).created)
      if created and (oldest < 0 or created < oldest) then oldest = created end
    end
  end
end
return {now, redis.call('ZCARD', KEYS[1]), oldest, redis.call('ZCARD', KEYS[3]),
        redis.call('ZCARD', KEYS[4])}

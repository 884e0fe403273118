#!lua
--[[
ack_delivery: a delivery is done (the sink took it, or its archive is gone):
remove it from the outbox, from the dead letters and its body.

KEYS[1] outbox ZSET        lr:{b}:outbox
KEYS[2] outbox bodies      lr:{b}:outbox:d
KEYS[3] dead deliveries    lr:{b}:outbox:dead
ARGV[1] delivery id (the session id)
Replies:
  {1}   removed
  {0}   it was not there (acknowledged already)
]]
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {removed > 0 and 1 or 0}

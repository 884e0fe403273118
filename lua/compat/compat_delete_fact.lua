#!lua
--[[
compat_delete_fact: forget one fact and the caller's record beside it.

KEYS[1] facts hash            lr:{b}:u:<uid>:facts
KEYS[2] fact records          lr:{b}:u:<uid>:lc:f
ARGV[1] field: msgpack array [category, key]
Replies:
  {1}   removed
  {0}   there was no such fact
]]
redis.call('HDEL', KEYS[2], ARGV[1])
return {redis.call('HDEL', KEYS[1], ARGV[1])}

#!lua
--[[
delete_fact: forget one fact about a user.

KEYS[1] facts hash            lr:{b}:u:<uid>:facts
ARGV[1] field: msgpack array [category, key]
Replies:
  {1}   deleted
  {0}   there was no such fact
]]
return {redis.call('HDEL', KEYS[1], ARGV[1])}

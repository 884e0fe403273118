--[[
get_evolution: a user's evolution log, oldest first.

KEYS[1] evolution ZSET        lr:{b}:u:<uid>:evolution
ARGV[1] how many of the newest records, at most (-1: all)
Replies:
  {record...}   msgpack arrays, oldest first
]]
local limit = tonumber(ARGV[1])
if limit < 0 then return redis.call('ZRANGE', KEYS[1], 0, -1) end
if limit == 0 then return {} end
return redis.call('ZRANGE', KEYS[1], -limit, -1)

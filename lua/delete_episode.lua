#!lua
--[[
delete_episode: forget one episode of a user's story.

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] episode id
Replies:
  {1}   deleted
  {0}   there was no such episode
]]
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
removed = removed + redis.call('HDEL', KEYS[2], ARGV[1])
if removed > 0 then return {1} end
return {0}

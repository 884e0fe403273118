#!lua flags=no-writes
--[[
page_episodes: one page of a user's episodes, most important first.

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] start rank
ARGV[2] stop rank, inclusive
Replies:
  {episode...}   msgpack arrays (false for an id whose body is gone)
]]
local ids = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2])
local reply = {}
for i, id in ipairs(ids) do reply[i] = redis.call('HGET', KEYS[2], id) end
return reply

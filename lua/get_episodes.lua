--[[
get_episodes: a user's episodes, most important first.

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] minimum importance, inclusive ("-inf" for all)
ARGV[2] how many, at most (-1: all)
Replies:
  {episode...}   msgpack arrays, highest importance first
]]
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local reply = {}
for i, id in ipairs(ids) do reply[i] = redis.call('HGET', KEYS[2], id) end
return reply

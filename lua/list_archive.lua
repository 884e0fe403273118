--[[
list_archive: the ids of a user's archived conversations, newest first.

KEYS[1] the user's archive ZSET   lr:{b}:u:<uid>:archive
ARGV[1] how many, at most (-1: all)
Replies:
  {sid...}
]]
local limit = tonumber(ARGV[1])
return redis.call('ZREVRANGE', KEYS[1], 0, limit < 0 and -1 or limit - 1)

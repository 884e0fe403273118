#!lua flags=no-writes
--[[
range_list: one page of a list (a history, an overflow or a segment), so that
long conversations are read in bounded replies.

KEYS[1] a list
ARGV[1] start index (negative counts from the end)
ARGV[2] stop index, inclusive
Replies:
  {length, item...}   the list's length and the page, in list order
]]
local reply = {redis.call('LLEN', KEYS[1])}
for _, item in ipairs(redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])) do
  reply[#reply + 1] = item
end
return reply

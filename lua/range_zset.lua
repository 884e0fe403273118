#!lua flags=no-writes
--[[
range_zset: one page of a sorted set by rank (a user's sessions, archive,
evolution log), so that a long one is read in bounded replies.

KEYS[1] a sorted set
ARGV[1] start rank
ARGV[2] stop rank, inclusive
ARGV[3] "1" for the highest scores first, "0" for the lowest first
Replies:
  {size, member, score, ...}
]]
local page
if ARGV[3] == '1' then
  page = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
else
  page = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
end
local reply = {redis.call('ZCARD', KEYS[1])}
for _, item in ipairs(page) do reply[#reply + 1] = item end
return reply

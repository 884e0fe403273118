#!lua flags=no-writes
--[[
get_episodes: one page of a user's episodes, most important first.

The cursor is the id of the last episode of the previous page; the page
starts just after it, by rank (O(log N + page)). Episodes are never removed,
so a cursor stays valid; an unknown cursor gives an empty page.

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes   (score: importance)
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] minimum importance, 0 to 10 inclusive, or "-inf" for all
ARGV[2] how many, at most (> 0)
ARGV[3] cursor: an episode id, or "" for the most important
Replies:
  {more, last, episode...}   msgpack arrays, highest importance first; more: 1 when
                             the next page may hold further episodes; last: the id of
                             the last episode examined, the next page's cursor
]]
local floor = ARGV[1] == '-inf' and -math.huge or tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local start = 0
if ARGV[3] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[3])
  if not rank then return {0, ''} end
  start = rank + 1
end
local rows = redis.call('ZREVRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
local reply = {#rows == 2 * count and 1 or 0, ''}
for i = 1, #rows, 2 do
  if tonumber(rows[i + 1]) < floor then
    reply[1] = 0
    break
  end
  reply[2] = rows[i]
  local body = redis.call('HGET', KEYS[2], rows[i])
  if body then reply[#reply + 1] = body end
end
return reply

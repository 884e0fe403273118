#!lua flags=no-writes
--[[
list_archive: one page of a user's archived conversations, newest first.

The cursor is the session id of the last conversation of the previous page;
the page starts just after it, by rank (O(log N + page)), so conversations
archived meanwhile never shift a page. A cursor no longer in the archive was
trimmed by retention, which removes the oldest first: nothing older is left.

KEYS[1] the user's archive ZSET   lr:{b}:u:<uid>:archive
ARGV[1] how many, at most (> 0)
ARGV[2] cursor: a session id, or "" for the newest
Replies:
  {sid...}
]]
local limit = tonumber(ARGV[1])
local start = 0
if ARGV[2] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if not rank then return {} end
  start = rank + 1
end
return redis.call('ZREVRANGE', KEYS[1], start, start + limit - 1)

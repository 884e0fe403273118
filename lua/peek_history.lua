#!lua flags=no-writes
--[[
peek_history: how many messages a session's conversation holds, and its newest
messages from the overflow and the history, without sliding its idle deadline
(an operator's peek: nothing is written).

A conversation is its segments (the meta hash's base counts their messages),
then its overflow, then its history; messages older than these two lists hold
are read by read_history, page by page.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
KEYS[2] overflow list         lr:{b}:s:<sid>:o
KEYS[3] history list          lr:{b}:s:<sid>:h
ARGV[1] how many of the newest messages, at most (>= 0; the caller sends at most page_size)
Replies:
  {1, base, overflow_len, history_len, message...}   the newest min(ARGV[1], overflow_len
                                                     + history_len) messages, oldest
                                                     first; base: the messages in segments
  {0}                                                the session is archived or deleted
]]
local metaKey, overflowKey, historyKey = KEYS[1], KEYS[2], KEYS[3]
local want = tonumber(ARGV[1])

local meta = redis.call('HMGET', metaKey, 'user', 'base')
if not meta[1] then return {0} end
local overflowLength = redis.call('LLEN', overflowKey)
local historyLength = redis.call('LLEN', historyKey)
local reply = {1, tonumber(meta[2]) or 0, overflowLength, historyLength}
local fromHistory = math.min(want, historyLength)
local fromOverflow = math.min(want - fromHistory, overflowLength)
if fromOverflow > 0 then
  for _, m in ipairs(redis.call('LRANGE', overflowKey, -fromOverflow, -1)) do
    reply[#reply + 1] = m
  end
end
if fromHistory > 0 then
  for _, m in ipairs(redis.call('LRANGE', historyKey, -fromHistory, -1)) do
    reply[#reply + 1] = m
  end
end
return reply

#!lua flags=no-writes
--[[
read_history: one page of a live session's conversation, read-only. Pages
after the first (which chat_turn returns, so that reading slides the idle
deadline) come from here.

Positions are absolute: message i is the i-th message of the conversation,
counted over its segments, then its overflow, then its history. A message
keeps its position while it moves from the history to the overflow and from
the overflow into a segment, so a reader that pages by position reads every
message once, in order, however the lists change between its pages.
The overflow's head is at position base (meta field: the messages in segments).

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
KEYS[2] overflow list         lr:{b}:s:<sid>:o
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] (optional) segment n  lr:{b}:u:<uid>:a:<sid>:g:<n>
ARGV[1] absolute position of the first message wanted, in messages from the start
ARGV[2] how many messages, at most (> 0)
ARGV[3] absolute position of segment n's first message, in messages (with KEYS[4])
Replies:
  {1, base, -1, message...}       from the overflow and history; fewer than asked: the end
  {1, base, seg_len, message...}  from segment n (none when the position lies past it:
                                  segment n + 1 starts at ARGV[3] + seg_len)
  {-7}                            the position lies in a segment and none was given
  {0}                             the session is archived or deleted
]]
local metaKey, overflowKey, historyKey, segmentKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local position, count = tonumber(ARGV[1]), tonumber(ARGV[2])

local meta = redis.call('HMGET', metaKey, 'user', 'base')
if not meta[1] then return {0} end
local base = tonumber(meta[2]) or 0

local reply
local function append(messages)
  for _, m in ipairs(messages) do reply[#reply + 1] = m end
end

if position >= base then
  reply = {1, base, -1}
  local offset = position - base
  local overflowLength = redis.call('LLEN', overflowKey)
  if offset < overflowLength then
    append(redis.call('LRANGE', overflowKey, offset, offset + count - 1))
    offset = overflowLength
  end
  local missing = count - (#reply - 3)
  if missing > 0 then
    local from = offset - overflowLength
    append(redis.call('LRANGE', historyKey, from, from + missing - 1))
  end
  return reply
end
if not segmentKey then return {-7} end
local length = redis.call('LLEN', segmentKey)
reply = {1, base, length}
local offset = position - tonumber(ARGV[3])
if offset < 0 then return redis.error_reply('read_history: position before segment start') end
if offset < length then append(redis.call('LRANGE', segmentKey, offset, offset + count - 1)) end
return reply

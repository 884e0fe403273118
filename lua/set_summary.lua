#!lua
--[[
set_summary: store a live session's running summary of its first `through`
messages, atomically, unless a summary through a later message is stored (so a
slower summarizer never overwrites a newer summary; one through the same message
is replaced). The summarized messages stay where they are: chat_turn starts the
context with the summary and only returns messages after the first `through`.
Not an activity of the user: the idle deadline does not slide.

The summary is a message record (system role, metadata {summary = true,
through = n}, its token count) to which this script appends the server's clock,
so chat_turn returns it as it returns messages. The hash lives in the session's
slot and goes with it: archive_session moves it into the archive, delete_session
and erasure delete it.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m     base (the messages in segments); sum,
                                                   set here: chat_turn reads KEYS[5] only
                                                   when it is there
KEYS[3] overflow list         lr:{b}:s:<sid>:o
KEYS[4] history list          lr:{b}:s:<sid>:h
KEYS[5] summary hash          lr:{b}:s:<sid>:sum   through, rec
ARGV[1] through: how many of the conversation's first messages it summarizes (>= 1)
ARGV[2] the summary's message record, lacking its last element, the timestamp (ms)
Replies:
  {1, now_ms}             stored
  {-8, stored_through}    a summary through a later message is stored; nothing written
  {-9, message_count}     the conversation holds fewer than `through` messages; nothing
                          written
  {-1}                    expired, not yet archived; nothing written
  {0}                     no such session; nothing written
]]
local sessionKey, metaKey, overflowKey, historyKey, summaryKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local through = tonumber(ARGV[1])

local meta = redis.call('HMGET', metaKey, 'abs', 'base')
if not meta[1] then return {0} end
if redis.call('EXISTS', sessionKey) == 0 then return {-1} end
local count = (tonumber(meta[2]) or 0) + redis.call('LLEN', overflowKey)
  + redis.call('LLEN', historyKey)
if through > count then return {-9, count} end
local stored = tonumber(redis.call('HGET', summaryKey, 'through'))
if stored and stored > through then return {-8, stored} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', summaryKey, 'through', through, 'rec', ARGV[2] .. cmsgpack.pack(now))
redis.call('HSET', metaKey, 'sum', 1)
return {1, now}

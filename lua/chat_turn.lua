--[[
chat_turn: append zero or more messages, slide the idle deadline and return
the last N messages, in one atomic step. touch, append_message, get_history
and chat_turn are all this script with different arguments.

The new deadline is min(now + max_idle, absolute deadline) on the server clock.
A session whose hash is gone is never written to, so it cannot be resurrected.
The deadline indexes are not written: their score is a lower bound of the
effective deadline (which never decreases), set by create_session and raised
by whoever finds the entry due while the session is still live (read_meta,
archive_session).
Messages past the live-history bound move, oldest first, to the overflow list,
which the archive collects with the rest. The reply carries the overflow's
length, so the caller can move a full overflow into a segment (archive_segment)
off this path.

Idempotent per turn: a call that appends carries a random turn id, which the
session hash keeps (field tid) in the HSET that slides the deadline. When the
connection breaks after a turn was written and before its reply arrived,
redis-py resends the same EVALSHA; the resend finds its own turn id, appends
nothing and writes nothing, and answers as the original did (deadline and
timestamp from the stored last activity). Only the last turn id is kept: a
resend follows its original at once, from the same caller, which awaits the
reply before its next turn. (Were two callers to write one session at once, a
turn of the other could fall between a send and its resend, and the resend would
append again: a conversation has one writer at a time.)

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] deadline index        lr:{b}:deadlines   (unused: kept in the signature)
KEYS[6] manual index          lr:{b}:manual      (unused: kept in the signature)
ARGV[1] session id
ARGV[2] live history bound, messages (> 0)
ARGV[3] messages to return: 0 none, N > 0 the last N (at most what the overflow and
        history hold), -P the first page of the overflow and history: at most P
        messages, from the overflow's head (a conversation's first page when it has
        no segments; read_history reads the rest)
ARGV[4] turn id: random, one per call that appends (ignored, or absent, without
        messages)
ARGV[5..] messages to append, each a msgpack array lacking its last element,
          the timestamp (ms), which this script appends
Replies:
  {1, effective_deadline_ms, now_ms, overflow_len, message...}   ARGV[3] >= 0;
                                                  oldest returned message first;
                                                  now_ms: the messages' timestamp
  {1, effective_deadline_ms, now_ms, overflow_len, base, history_len, message...}
                                                  ARGV[3] < 0; base: the messages in
                                                  segments, the absolute position of
                                                  the overflow's head
  {-1}                                             expired, not yet archived; nothing written
  {0}                                              no such session; nothing written
]]
local sessionKey, metaKey, historyKey, overflowKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid = ARGV[1]
local bound, want = tonumber(ARGV[2]), tonumber(ARGV[3])

local s = redis.call('HMGET', sessionKey, 'abs', 'idle', 'auto', 'tid', 'last')
if not s[1] then
  if redis.call('EXISTS', metaKey) == 1 then return {-1} end
  return {0}
end

local now, deadline
if #ARGV > 4 and s[4] == ARGV[4] then
  -- A resend of the turn already stored: nothing to write.
  now = tonumber(s[5])
  deadline = math.min(now + tonumber(s[2]), tonumber(s[1]))
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  deadline = math.min(now + tonumber(s[2]), tonumber(s[1]))
  if #ARGV > 4 then
    redis.call('HSET', sessionKey, 'last', now, 'tid', ARGV[4])
  else
    redis.call('HSET', sessionKey, 'last', now)
  end
  redis.call('PEXPIREAT', sessionKey, deadline)
  if #ARGV > 4 then
    local stamp = cmsgpack.pack(now)
    local length = 0
    for i = 5, #ARGV do
      length = redis.call('RPUSH', historyKey, ARGV[i] .. stamp)
    end
    for _ = 1, length - bound do
      redis.call('LMOVE', historyKey, overflowKey, 'LEFT', 'RIGHT')
    end
  end
end

local reply = {1, deadline, now, redis.call('LLEN', overflowKey)}
if want == 0 then return reply end
local live
if want < 0 then
  local page = -want
  reply[5] = tonumber(redis.call('HGET', metaKey, 'base')) or 0
  reply[6] = redis.call('LLEN', historyKey)
  for _, m in ipairs(redis.call('LRANGE', overflowKey, 0, page - 1)) do reply[#reply + 1] = m end
  live = {}
  if #reply - 6 < page then live = redis.call('LRANGE', historyKey, 0, page - 1 - (#reply - 6)) end
else
  live = redis.call('LRANGE', historyKey, -want, -1)
  if #live < want then
    for _, m in ipairs(redis.call('LRANGE', overflowKey, #live - want, -1)) do
      reply[#reply + 1] = m
    end
  end
end
for _, m in ipairs(live) do reply[#reply + 1] = m end
return reply

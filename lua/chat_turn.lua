--[[
chat_turn: append zero or more messages, slide the idle deadline and return
the last N messages, in one atomic step. touch, append_message, get_history
and chat_turn are all this script with different arguments.

The new deadline is min(now + max_idle, absolute deadline) on the server clock.
A session whose hash is gone is never written to, so it cannot be resurrected.
Messages past the live-history bound move, oldest first, to the overflow list,
which the archive collects with the rest.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
KEYS[3] history list          lr:{b}:s:<sid>:h
KEYS[4] overflow list         lr:{b}:s:<sid>:o
KEYS[5] deadline index        lr:{b}:deadlines
KEYS[6] manual index          lr:{b}:manual
ARGV[1] session id
ARGV[2] live history bound, messages (> 0)
ARGV[3] messages to return: 0 none, -1 the whole conversation, N the last N
ARGV[4..] messages to append, each a msgpack array lacking its last element,
          the timestamp (ms), which this script appends
Replies:
  {1, effective_deadline_ms, now_ms, message...}   oldest returned message first
  {-1}                                             expired, not yet archived; nothing written
  {0}                                              no such session; nothing written
]]
local sessionKey, metaKey, historyKey, overflowKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sid = ARGV[1]
local bound, want = tonumber(ARGV[2]), tonumber(ARGV[3])

local s = redis.call('HMGET', sessionKey, 'abs', 'idle', 'auto')
if not s[1] then
  if redis.call('EXISTS', metaKey) == 1 then return {-1} end
  return {0}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = math.min(now + tonumber(s[2]), tonumber(s[1]))
redis.call('HSET', sessionKey, 'last', now)
redis.call('PEXPIREAT', sessionKey, deadline)
redis.call('ZADD', s[3] == '1' and KEYS[5] or KEYS[6], deadline, sid)

if #ARGV > 3 then
  local stamp = cmsgpack.pack(now)
  local length = 0
  for i = 4, #ARGV do
    length = redis.call('RPUSH', historyKey, ARGV[i] .. stamp)
  end
  for _ = 1, length - bound do
    redis.call('LMOVE', historyKey, overflowKey, 'LEFT', 'RIGHT')
  end
end

local reply = {1, deadline, now}
if want == 0 then return reply end
local live
if want < 0 then
  for _, m in ipairs(redis.call('LRANGE', overflowKey, 0, -1)) do reply[#reply + 1] = m end
  live = redis.call('LRANGE', historyKey, 0, -1)
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

--[[
read_archived: archived conversations with their messages.

KEYS[1+3i..] per conversation: record hash, archived history, archived overflow
ARGV         none
Replies:
  one entry per conversation: {{pers, created_ms, ended_ms, reason, count}, {message...}}
  (the record fields are false when the record is gone), oldest message first
]]
local reply = {}
for k = 1, #KEYS, 3 do
  local messages = redis.call('LRANGE', KEYS[k + 2], 0, -1)
  for _, m in ipairs(redis.call('LRANGE', KEYS[k + 1], 0, -1)) do
    messages[#messages + 1] = m
  end
  reply[#reply + 1] = {redis.call('HMGET', KEYS[k], 'pers', 'created', 'ended', 'reason', 'count'),
                       messages}
end
return reply

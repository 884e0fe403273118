--[[
get_sessions: read one or more sessions without refreshing them (a peek).

KEYS[1..n] session hashes    lr:{b}:s:<sid>   (all in one slot)
ARGV       none
Replies:
  one entry per key: {user, pers, created_ms, absolute_ms, idle_ms, last_ms, auto, mood}
  with every field false when the session is not live
]]
local reply = {}
for i, key in ipairs(KEYS) do
  reply[i] = redis.call('HMGET', key, 'user', 'pers', 'created', 'abs', 'idle', 'last', 'auto', 'mood')
end
return reply

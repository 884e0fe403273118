#!lua flags=no-writes
--[[
get_sessions: read one or more sessions without refreshing them (a peek).

The last activity is in the meta hash (chat_turn writes it there); a session
not written since it was created by an older version has it in the session hash.

KEYS[1..n] session hashes and their meta hashes, alternating:
           lr:{b}:s:<sid>, lr:{b}:s:<sid>:m, ...   (all in one slot)
ARGV       none
Replies:
  one entry per session: {user, pers, created_ms, absolute_ms, idle_ms, last_ms, auto, mood}
  with every field false when the session is not live
]]
local reply = {}
for i = 1, #KEYS, 2 do
  local s = redis.call('HMGET', KEYS[i], 'user', 'pers', 'created', 'abs', 'idle', 'last', 'auto',
                       'mood')
  if s[1] then
    local last = redis.call('HGET', KEYS[i + 1], 'last')
    if last then s[6] = last end
  end
  reply[#reply + 1] = s
end
return reply

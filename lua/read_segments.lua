#!lua flags=no-writes
--[[
read_segments: who owns a session and how far its segments reach. The first
step of every operation that declares a session's segments (the segment
follow-up of a chat turn, delete_session, paged history reads): segment keys
live under the user's archive area, so the user must be known to name them.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
ARGV    none
Replies:
  {user, segs, base}   user false once archived or deleted; segs: how many
                       segments; base: how many messages they hold
]]
local meta = redis.call('HMGET', KEYS[1], 'user', 'segs', 'base')
return {meta[1], tonumber(meta[2]) or 0, tonumber(meta[3]) or 0}

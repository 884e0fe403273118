#!lua flags=no-writes
--[[
list_user_sessions: the ids of a user's sessions not yet archived, oldest first.
Some may have expired a moment ago; the caller reads them with get_sessions,
which says which are live.

KEYS[1] the user's sessions   lr:{b}:u:<uid>:sessions
ARGV    none
Replies:
  {sid...}
]]
return redis.call('ZRANGE', KEYS[1], 0, -1)

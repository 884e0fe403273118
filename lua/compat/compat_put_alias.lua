#!lua
--[[
compat_put_alias: record which session of ours a caller-chosen session id
names (and its user), replacing any older record, expiring at a given time.

KEYS[1] alias hash            lr:{c<hhhh>}:lc:s:<caller id>
ARGV[1] expiry, Unix milliseconds (the session's absolute deadline plus a grace)
ARGV[2..] field, value pairs  sid, user, pers, created_at, expires_at, last_activity,
                              status, provider_config
Replies:
  {1}
]]
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return {1}

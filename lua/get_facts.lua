--[[
get_facts: every fact about a user; the caller filters by category.

KEYS[1] facts hash            lr:{b}:u:<uid>:facts
ARGV    none
Replies:
  {field, fact, field, fact, ...}
]]
return redis.call('HGETALL', KEYS[1])

#!lua flags=no-writes
--[[
get_facts: one page of the facts about a user (HSCAN); the caller filters by
category and drops the duplicates HSCAN may return while the hash is rehashed.

KEYS[1] facts hash            lr:{b}:u:<uid>:facts
ARGV[1] HSCAN cursor ("0" to start)
ARGV[2] COUNT hint: how many fields per page
Replies:
  {next_cursor, {field, fact, field, fact, ...}}   next_cursor "0": done
]]
return redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))

#!lua flags=no-writes
--[[
scan_hash: one HSCAN step over a hash that grows with use (a user's facts). A
field may come back in more than one step (HSCAN's guarantee is at least once):
the caller keeps one of each.

KEYS[1] the hash scanned      lr:{b}:u:<uid>:facts
ARGV[1] cursor ("0" to start)
ARGV[2] COUNT hint: how many fields per step (> 0)
Replies:
  {next_cursor, field, value, ...}   next_cursor "0": the scan is complete
]]
local step = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local reply = {step[1]}
for _, item in ipairs(step[2]) do reply[#reply + 1] = item end
return reply

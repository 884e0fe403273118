#!lua flags=no-writes
--[[
compat_scan: one HSCAN step over a hash that grows with a user's lifetime (facts,
episode bodies), each field with the record the LuminoraCore adapter keeps
beside it (its extra fields and save order), so that neither hash is ever read
whole in one reply.

A step returns about ARGV[2] fields; while Redis keeps the hash in its compact
encoding (at most hash-max-listpack-entries fields, 128 by default) one step
returns all of them. A field may come back in more than one step (HSCAN's
guarantee is at least once): the caller keeps one of each.

KEYS[1] the hash scanned      lr:{b}:u:<uid>:facts  or  lr:{b}:u:<uid>:episodes:b
KEYS[2] the records beside it lr:{b}:u:<uid>:lc:f   or  lr:{b}:u:<uid>:lc:e
ARGV[1] cursor: "0" to start, then the cursor the previous step replied
ARGV[2] COUNT hint: how many fields per step (> 0)
Replies:
  {next_cursor, field, value, record, ...}   next_cursor "0": the scan is complete;
                                             record false when there is none
]]
local scannedKey, recordsKey = KEYS[1], KEYS[2]
local step = redis.call('HSCAN', scannedKey, ARGV[1], 'COUNT', ARGV[2])
local reply = {step[1]}
local items = step[2]
for i = 1, #items, 2 do
  reply[#reply + 1] = items[i]
  reply[#reply + 1] = items[i + 1]
  reply[#reply + 1] = redis.call('HGET', recordsKey, items[i])
end
return reply

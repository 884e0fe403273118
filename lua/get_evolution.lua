#!lua flags=no-writes
--[[
get_evolution: one page of a user's evolution log, walked by sequence number
from a cursor, filtered by personality before counting, so a page holds up to
the number asked of matching records whatever the others are. A call examines
at most ARGV[5] records: a rare personality takes more calls, never a longer
one.

KEYS[1] evolution ZSET        lr:{b}:u:<uid>:evolution   (score: sequence number)
ARGV[1] "up" (oldest first, from the cursor) or "down" (newest first)
ARGV[2] cursor: a score bound, e.g. "(41" (exclusive) or "-inf" / "+inf"
ARGV[3] how many matching records, at most (> 0)
ARGV[4] personality name, or "" for every record
ARGV[5] how many records to examine, at most (> 0)
Replies:
  {last, more, record...}   records in walk order; last: the sequence number of the
                            last record examined ("" when none); more: 1 when the log
                            may hold further records past last
]]
local key, cursor = KEYS[1], ARGV[2]
local want, personality, scan = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local rows
if ARGV[1] == 'up' then
  rows = redis.call('ZRANGEBYSCORE', key, cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, scan)
else
  rows = redis.call('ZREVRANGEBYSCORE', key, cursor, '-inf', 'WITHSCORES', 'LIMIT', 0, scan)
end
local reply = {'', #rows == 2 * scan and 1 or 0}
local found = 0
for i = 1, #rows, 2 do
  reply[1] = rows[i + 1]
  local record, keep = rows[i], personality == ''
  if not keep then
    local ok, decoded = pcall(cmsgpack.unpack, record)
    keep = ok and type(decoded) == 'table' and decoded[2] == personality
  end
  if keep then
    reply[#reply + 1] = record
    found = found + 1
    if found >= want then
      if i + 1 < #rows then reply[2] = 1 end
      break
    end
  end
end
return reply

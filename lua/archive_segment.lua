#!lua
--[[
archive_segment: move a session's full overflow list into its user's archive
area as the session's next segment, in O(1) (RENAME). Runs after a chat turn
whose reply showed the overflow at or above the bound, off the hot path; the
caller read the owner and the segment count first (read_segments) and this
script re-checks both, so racing callers move each overflow exactly once.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
KEYS[2] overflow list         lr:{b}:s:<sid>:o
KEYS[3] the next segment      lr:{b}:u:<uid>:a:<sid>:g:<n>   (n = segs + 1)
ARGV[1] user id read by read_segments (re-checked here)
ARGV[2] n (integer, >= 1): the segment number KEYS[3] names
ARGV[3] overflow bound, messages (> 0): below it nothing moves
Replies:
  {1, n, moved}   the overflow (moved messages) is now segment n
  {0}             nothing to do: the overflow is below the bound, or the session
                  is archived or deleted (or the meta names another user)
  {-4, segs}      the segment count changed since it was read; read it again
  error           KEYS[3] exists already (never overwritten)
]]
local metaKey, overflowKey, segmentKey = KEYS[1], KEYS[2], KEYS[3]
local userId, n, bound = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local meta = redis.call('HMGET', metaKey, 'user', 'segs')
if meta[1] ~= userId then return {0} end
local segs = tonumber(meta[2]) or 0
if segs + 1 ~= n then return {-4, segs} end
local moved = redis.call('LLEN', overflowKey)
if moved < bound then return {0} end
if redis.call('EXISTS', segmentKey) == 1 then
  return redis.error_reply('archive_segment: ' .. segmentKey .. ' exists already')
end
redis.call('RENAME', overflowKey, segmentKey)
redis.call('HSET', metaKey, 'segs', n)
redis.call('HINCRBY', metaKey, 'base', moved)
return {1, n, moved}

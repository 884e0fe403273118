#!lua flags=no-writes
--[[
list_user_sessions: one page of the ids of a user's sessions not yet archived,
oldest first. Some may have expired a moment ago; the caller reads them with
get_sessions, which says which are live.

Sessions are ordered by (creation time, id): Redis orders members of equal
score by their bytes, so the pair is a total order. The cursor is the pair of
the last session of the previous page, and the page starts just after it
whether that session is still in the set or not, so a session archived,
deleted or created between pages never makes a page skip or repeat another.
Finding the cursor's place is O(log N), or when its session is gone a binary
search over the sessions created in the same millisecond; the page is O(page).

KEYS[1] the user's sessions   lr:{b}:u:<uid>:sessions   (score: creation time)
ARGV[1] how many, at most (> 0)
ARGV[2] cursor creation time: the score of the previous page's last session as this
        script replied it, or "" for the oldest
ARGV[3] cursor session id: the previous page's last session ("" with ARGV[2] "")
Replies:
  {sid, score, ...}   at most ARGV[1] sessions, oldest first; fewer: the last page
]]
local sessionsKey = KEYS[1]
local count = tonumber(ARGV[1])
local cursorScore, cursorId = ARGV[2], ARGV[3]

-- Whether member a sorts before member b, byte by byte as Redis orders them (Lua's own
-- string comparison follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- How many sessions sort at or before the cursor: the page starts at that rank.
local start = 0
if cursorScore ~= '' then
  local score = redis.call('ZSCORE', sessionsKey, cursorId)
  if score and tonumber(score) == tonumber(cursorScore) then
    start = redis.call('ZRANK', sessionsKey, cursorId) + 1
  else
    local low = redis.call('ZCOUNT', sessionsKey, '-inf', '(' .. cursorScore)
    local high = low + redis.call('ZCOUNT', sessionsKey, cursorScore, cursorScore)
    while low < high do
      local middle = math.floor((low + high) / 2)
      if before(redis.call('ZRANGE', sessionsKey, middle, middle)[1], cursorId) then
        low = middle + 1
      else
        high = middle
      end
    end
    start = low
  end
end
return redis.call('ZRANGE', sessionsKey, start, start + count - 1, 'WITHSCORES')

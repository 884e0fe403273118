#!lua flags=no-writes
--[[
get_episodes: one page of a user's episodes, most important first.

Episodes are ordered by (importance, id), highest first: Redis orders members
of equal score by their bytes, so the pair is a total order. The cursor is
the pair of the last episode of the previous page, and the page starts just
below it whether that episode still exists or not, so an episode deleted or
saved between pages neither ends the listing early nor repeats one (one saved
below the cursor is listed, one above it is not). Finding the cursor's place
is O(log N), or when its episode is gone a binary search over the episodes of
its importance (O(log N) steps of O(log N)); the page is O(page).

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes   (score: importance)
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] minimum importance, 0 to 10 inclusive, or "-inf" for all
ARGV[2] how many, at most (> 0)
ARGV[3] cursor importance: the score of the previous page's last episode as this
        script replied it, or "" for the most important
ARGV[4] cursor episode id: the previous page's last episode ("" with ARGV[3] "")
Replies:
  {more, score, id, episode...}   msgpack arrays, highest importance first; more: 1
                                  when the next page may hold further episodes; score
                                  and id: the last episode examined, the next page's
                                  cursor ("" when none was)
]]
local episodesKey, bodiesKey = KEYS[1], KEYS[2]
local floor = ARGV[1] == '-inf' and -math.huge or tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local cursorScore, cursorId = ARGV[3], ARGV[4]

-- Whether member a sorts before member b, byte by byte as Redis orders them (Lua's own
-- string comparison follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- How many episodes sort below the cursor, in ascending (score, id) order: the page is
-- the ones just under it.
local below
if cursorScore == '' then
  below = redis.call('ZCARD', episodesKey)
else
  local score = redis.call('ZSCORE', episodesKey, cursorId)
  if score and tonumber(score) == tonumber(cursorScore) then
    below = redis.call('ZRANK', episodesKey, cursorId)
  else
    local low = redis.call('ZCOUNT', episodesKey, '-inf', '(' .. cursorScore)
    local high = low + redis.call('ZCOUNT', episodesKey, cursorScore, cursorScore)
    while low < high do
      local middle = math.floor((low + high) / 2)
      if before(redis.call('ZRANGE', episodesKey, middle, middle)[1], cursorId) then
        low = middle + 1
      else
        high = middle
      end
    end
    below = low
  end
end

local first = math.max(0, below - count)
local reply = {first > 0 and 1 or 0, '', ''}
if below == 0 then return reply end
local rows = redis.call('ZRANGE', episodesKey, first, below - 1, 'WITHSCORES')
for i = #rows - 1, 1, -2 do
  if tonumber(rows[i + 1]) < floor then
    reply[1] = 0
    break
  end
  reply[2], reply[3] = rows[i + 1], rows[i]
  local body = redis.call('HGET', bodiesKey, rows[i])
  if body then reply[#reply + 1] = body end
end
return reply

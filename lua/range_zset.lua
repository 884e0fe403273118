#!lua flags=no-writes
--[[
range_zset: one page of a sorted set that grows with a user's lifetime (the
user's sessions, archive or episodes), walked in (score, member) order from a
cursor, so that a long one is read in bounded replies and nothing is skipped
or repeated while members come and go between pages.

Redis orders members of equal score by their bytes, so (score, member) is a
total order. The cursor is the pair of the last member of the previous page,
and the page starts just past it whether that member is still in the set or
not: a member removed or added between pages never makes a page skip or
repeat another (one added behind the cursor is not listed, one ahead of it
is). Finding the cursor's place is O(log N), or when its member is gone a
binary search over the members of its score; the page is O(page).

KEYS[1] the sorted set        lr:{b}:u:<uid>:sessions, lr:{b}:u:<uid>:archive or
                              lr:{b}:u:<uid>:episodes
KEYS[2] bodies hash, optional lr:{b}:u:<uid>:episodes:b   (member -> body): when given,
                              each member's body is listed instead of the member, and
                              a member without one is left out
ARGV[1] order: "asc" (lowest score first) or "desc" (highest score first)
ARGV[2] how many members to examine, at most (> 0)
ARGV[3] cursor score: the score of the previous page's last member as this script
        replied it, or "" to start at the first
ARGV[4] cursor member: the previous page's last member ("" with ARGV[3] "")
ARGV[5] bound: the last score walked, inclusive (e.g. an importance 0 to 10), or ""
        for none: in "desc" order the lowest score listed, in "asc" the highest
Replies:
  {more, score, member, item...}   items (members, or their bodies) in walk order;
                                   more: 1 when the next page may hold further
                                   members; score and member: the last one
                                   examined, the next page's cursor ("" when none was)
]]
local zsetKey, bodiesKey = KEYS[1], KEYS[2]
local descending = ARGV[1] == 'desc'
local count = tonumber(ARGV[2])
local cursorScore, cursorMember = ARGV[3], ARGV[4]
local bound = ARGV[5] ~= '' and tonumber(ARGV[5]) or nil

-- Whether member a sorts before member b, byte by byte as Redis orders them (Lua's own
-- string comparison follows the server's locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- How many members sort before the cursor in ascending order, and whether the cursor
-- is still a member.
local below, present = 0, false
if cursorScore ~= '' then
  local score = redis.call('ZSCORE', zsetKey, cursorMember)
  if score and tonumber(score) == tonumber(cursorScore) then
    below, present = redis.call('ZRANK', zsetKey, cursorMember), true
  else
    local low = redis.call('ZCOUNT', zsetKey, '-inf', '(' .. cursorScore)
    local high = low + redis.call('ZCOUNT', zsetKey, cursorScore, cursorScore)
    while low < high do
      local middle = math.floor((low + high) / 2)
      if before(redis.call('ZRANGE', zsetKey, middle, middle)[1], cursorMember) then
        low = middle + 1
      else
        high = middle
      end
    end
    below = low
  end
elseif descending then
  below = redis.call('ZCARD', zsetKey)
end

-- The ranks of the page, in ascending order, and the walk over them.
local first, last, more
if descending then
  first, last = math.max(0, below - count), below - 1
  more = first > 0
else
  first = (present and below + 1) or below
  last = first + count - 1
  more = last + 1 < redis.call('ZCARD', zsetKey)
end
local reply = {more and 1 or 0, '', ''}
if last < first then return reply end
local rows = redis.call('ZRANGE', zsetKey, first, last, 'WITHSCORES')
local from, to, step = 1, #rows - 1, 2
if descending then from, to, step = #rows - 1, 1, -2 end
for i = from, to, step do
  local score = tonumber(rows[i + 1])
  if bound and ((descending and score < bound) or (not descending and score > bound)) then
    reply[1] = 0
    break
  end
  reply[2], reply[3] = rows[i + 1], rows[i]
  local item = rows[i]
  if bodiesKey then item = redis.call('HGET', bodiesKey, rows[i]) end
  if item then reply[#reply + 1] = item end
end
return reply

#!lua flags=no-writes
--[[
recall: what a personality remembers of a user, packed within a token budget, in one
call: the affinity points, the newest facts and the most important episodes.

Every fact and episode stores its token count, computed when it was written, as a
msgpack uint32 (0xce + 4 bytes) just before the record's timestamp (a uint64 of Unix
ms: 0xcf + 8 bytes) at the record's end, so it is read here without decoding the
record. A record written before counts were stored (its array header counts one
element fewer: 0x93 for a fact, 0x98 for an episode) is estimated at its stored
bytes / 4, rounded up.

Packing, each step taking an item only when it fits in what is left of its share,
and otherwise going on to the next (a smaller one may still fit):
  1. facts, newest first, within half the budget (rounded down), at most ARGV[3];
  2. episodes of this personality or of none, most important first and newest first
     among equals, within the budget less what the facts took, at most ARGV[5];
  3. facts step 1 left out for want of room, newest first, in what is left.
With no budget every fact and episode within the caps is taken.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity
KEYS[2] facts hash            lr:{b}:u:<uid>:facts        (all of it is read: one field
                                                           per category and key)
KEYS[3] episodes ZSET         lr:{b}:u:<uid>:episodes     (id, scored by importance)
KEYS[4] episode bodies hash   lr:{b}:u:<uid>:episodes:b
ARGV[1] personality name
ARGV[2] budget in tokens (>= 0), or "" for none
ARGV[3] most facts taken (>= 0)
ARGV[4] most episodes examined, the most important first (>= 0)
ARGV[5] most episodes taken (>= 0)
Replies:
  {points, tokens, facts, left_out, field, fact, ..., episode, ...}
    points: the affinity points with the personality (false when never set);
    tokens: the token counts of what is taken, summed; facts: how many facts follow
    (field and record each, newest first), then the episodes' records in their order;
    left_out: facts and examined episodes of the personality that were not taken
]]
local personality = ARGV[1]
local budget = ARGV[2] ~= '' and tonumber(ARGV[2]) or nil
local maxFacts, examine, maxEpisodes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function uint(s, from, n)
  local value = 0
  for i = from, from + n - 1 do value = value * 256 + string.byte(s, i) end
  return value
end

-- A record's timestamp (0 when it has none where expected) and token count.
local function measure(body, counted)
  local length = #body
  local ts, tokens = 0, nil
  if length >= 9 and string.byte(body, length - 8) == 0xcf then
    ts = uint(body, length - 7, 8)
    if string.byte(body, 1) == counted and length >= 14
        and string.byte(body, length - 13) == 0xce then
      tokens = uint(body, length - 12, 4)
    end
  end
  return ts, tokens or math.ceil(length / 4)
end

local left = budget
local function fits(tokens, room)
  return room == nil or tokens <= room
end

-- Facts, newest first.
local facts = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local ts, tokens = measure(all[i + 1], 0x94)
  facts[#facts + 1] = {field = all[i], body = all[i + 1], ts = ts, tokens = tokens}
end
table.sort(facts, function(a, b)
  if a.ts ~= b.ts then return a.ts > b.ts end
  return a.field < b.field
end)
local share = budget and math.floor(budget / 2) or nil
local used, takenFacts = 0, 0
for _, fact in ipairs(facts) do
  if takenFacts < maxFacts and fits(fact.tokens, share and share - used) then
    fact.taken = true
    used = used + fact.tokens
    takenFacts = takenFacts + 1
  end
end
if left then left = left - used end

-- Episodes of this personality or of none, most important first, then newest first.
local episodes = {}
local rows = examine > 0 and redis.call('ZREVRANGE', KEYS[3], 0, examine - 1, 'WITHSCORES') or {}
for i = 1, #rows, 2 do
  local body = redis.call('HGET', KEYS[4], rows[i])
  if body then
    local ok, record = pcall(cmsgpack.unpack, body)
    -- An unreadable record is kept: the client skips it and counts it as unreadable.
    local owner = ok and type(record) == 'table' and record[7] or nil
    if owner == nil or owner == personality then
      local ts, tokens = measure(body, 0x99)
      episodes[#episodes + 1] = {id = rows[i], body = body, importance = tonumber(rows[i + 1]),
                                 ts = ts, tokens = tokens}
    end
  end
end
table.sort(episodes, function(a, b)
  if a.importance ~= b.importance then return a.importance > b.importance end
  if a.ts ~= b.ts then return a.ts > b.ts end
  return a.id < b.id
end)
local takenEpisodes, leftOut = {}, 0
for _, episode in ipairs(episodes) do
  if #takenEpisodes < maxEpisodes and fits(episode.tokens, left) then
    takenEpisodes[#takenEpisodes + 1] = episode.body
    used = used + episode.tokens
    if left then left = left - episode.tokens end
  else
    leftOut = leftOut + 1
  end
end

-- Facts that did not fit in their half, in what the episodes left.
for _, fact in ipairs(facts) do
  if not fact.taken then
    if takenFacts < maxFacts and fits(fact.tokens, left) then
      fact.taken = true
      used = used + fact.tokens
      if left then left = left - fact.tokens end
      takenFacts = takenFacts + 1
    else
      leftOut = leftOut + 1
    end
  end
end

local reply = {redis.call('HGET', KEYS[1], personality), used, takenFacts, leftOut}
for _, fact in ipairs(facts) do
  if fact.taken then
    reply[#reply + 1] = fact.field
    reply[#reply + 1] = fact.body
  end
end
for _, body in ipairs(takenEpisodes) do reply[#reply + 1] = body end
return reply

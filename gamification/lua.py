"""The Lua scripts that change a learner's gamification state, each in one atomic call.

Every script touches keys of the learner's slot only and gets them in a fixed layout:

    KEYS[1] streak  [2] streak-days  [3] stats of the day  [4] totals  [5] xp-weekly
    KEYS[6] achievements  [7] activity-ids  [8..] the script's own (goal, progress)

``ARGV[1]`` is one JSON object (``A``) built by ``gamification.managers.engine``: the clock
("now", the ISO week, the day and the local-day boundaries around the activity, all computed
in Python from the user's timezone), the rules (XP, freezes, achievements) and the change.
Timestamps travel as strings (Lua numbers print with 14 digits). A script answers with one
JSON object: what changed, so the caller can publish events and update the leaderboard.

Streak model: the streak is a fold over the learner's recent active days (ZSET of day
numbers) starting from a stored base (the older days, already folded). An activity adds its
day and the fold is replayed, so an offline client's late activity that fills a gap heals
the streak exactly as if it had arrived in time, and concurrent activity on one day adds the
day once. A new day's number is derived from the stored last activity (``lastAt``) and the
local-day boundaries of the current timezone, so a DST change or a timezone change neither
breaks nor double-counts a day: the gap between two activities is counted in the timezone in
force when the later one happens.
"""

from __future__ import annotations

from mookti.redis import register_script

LIBRARY = r"""
local A = cjson.decode(ARGV[1])
local STREAK, DAYS, STATS, TOTALS, WEEKLY, ACH, SEEN = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local out = {xp = {awarded = 0}, achievements = {}}

local function int(x) return string.format('%d', x) end
local function num(v, default) return tonumber(v) or default end
local function hash(key)
  local flat, t = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function add_xp(amount, source)
  if amount <= 0 then return end
  redis.call('HINCRBY', TOTALS, 'xp', amount)
  redis.call('HINCRBY', TOTALS, 'xp:' .. source, amount)
  redis.call('HINCRBY', WEEKLY, A.week, amount)
  redis.call('HINCRBY', STATS, 'xp', amount)
  out.xp.awarded = out.xp.awarded + amount
end

-- One active day d after the state's last day: consecutive +1; a gap of missed days is
-- bridged by as many freezes (the streak goes on, missed days add nothing), else it restarts.
local function fold(st, d)
  if st.last == nil then
    st.current = 1
  else
    local gap = d - st.last - 1
    if gap <= 0 then
      st.current = st.current + 1
    elseif gap <= st.freezes then
      st.freezes = st.freezes - gap
      st.current = st.current + 1
    else
      st.freezes = 0
      st.current = 1
    end
  end
  if st.current > st.longest then st.longest = st.current end
  if A.earnEvery > 0 and st.current % A.earnEvery == 0 and st.freezes < A.maxFreezes then
    st.freezes = st.freezes + 1
  end
  st.last = d
end

local function base_state(h)
  return {current = num(h.baseCurrent, 0), longest = num(h.baseLongest, 0),
          freezes = num(h.baseFreezes, 0), last = tonumber(h.baseDay)}
end

local function save_base(h, st)
  h.baseDay, h.baseCurrent, h.baseLongest, h.baseFreezes = st.last, st.current, st.longest, st.freezes
  redis.call('HSET', STREAK, 'baseDay', int(st.last), 'baseCurrent', int(st.current),
             'baseLongest', int(st.longest), 'baseFreezes', int(st.freezes))
end

-- Keep at most A.keep days in the ZSET: the oldest are folded into the base.
local function compact(h)
  local extra = redis.call('ZCARD', DAYS) - A.keep
  if extra <= 0 then return end
  local st = base_state(h)
  for _, d in ipairs(redis.call('ZRANGE', DAYS, 0, extra - 1)) do fold(st, tonumber(d)) end
  redis.call('ZREMRANGEBYRANK', DAYS, 0, extra - 1)
  save_base(h, st)
end

local function replay(h)
  compact(h)
  local st = base_state(h)
  local low = '-inf'
  if st.last ~= nil then low = '(' .. int(st.last) end
  for _, d in ipairs(redis.call('ZRANGEBYSCORE', DAYS, low, '+inf')) do fold(st, tonumber(d)) end
  st.longest = math.max(st.longest, num(h.longest, 0))
  redis.call('HSET', STREAK, 'current', int(st.current), 'longest', int(st.longest),
             'freezes', int(st.freezes), 'lastDay', int(st.last))
  return st
end

-- Adds the activity's day to the active days; true if it is a day not counted before.
local function record_day(h, act)
  local t = tonumber(act.t)
  local last_at, last_day = tonumber(h.lastAt), tonumber(h.lastDay)
  local day = nil
  if last_at == nil or last_day == nil then
    day = act.day
  elseif t >= last_at then
    -- act.back[i] = start of local day (today - i + 1): how many days after the last one?
    local k = nil
    for i, start in ipairs(act.back) do
      if last_at >= tonumber(start) then k = i - 1; break end
    end
    if k == nil then day = math.max(act.day, last_day + A.maxFreezes + 2) else day = last_day + k end
  else
    -- late (offline) activity: act.fwd[i] = start of local day (its day + i): days before the last one
    local j = 0
    for i, start in ipairs(act.fwd) do
      if last_at >= tonumber(start) then j = i else break end
    end
    if j < #act.fwd then day = last_day - j end
  end
  if last_at == nil or t > last_at then redis.call('HSET', STREAK, 'lastAt', act.t) end
  if day == nil then return false end
  local base_day = tonumber(h.baseDay)
  if base_day ~= nil and day <= base_day then return false end
  return redis.call('ZADD', DAYS, 'NX', day, int(day)) == 1
end

local function streak_out(st, before)
  out.streak = {current = st.current, longest = st.longest, freezes = st.freezes,
                lastAt = redis.call('HGET', STREAK, 'lastAt') or '',
                changed = st.current ~= before.current or st.longest ~= before.longest
                          or st.freezes ~= before.freezes}
end

local COUNTERS = {'messages', 'seconds', 'items', 'activities'}

-- The daily cap (A.limits) this activity would pass on its local day, or nil: checked before
-- anything is written, so a refused activity changes nothing.
local function over_limit(act)
  local L = A.limits
  local function over(field, add, cap)
    return cap ~= nil and add > 0 and num(redis.call('HGET', STATS, field), 0) + add > cap
  end
  if over('items', act.items, L.items) then return {'items', L.items} end
  if over('seconds', act.seconds, L.seconds) then return {'minutes', L.seconds / 60} end
  if over('n:' .. act.type, 1, L.activities[act.type]) then return {act.type, L.activities[act.type]} end
  return nil
end

local function limited(found)
  return cjson.encode({limited = found[1], limit = found[2]})
end

local function apply_activity(act)
  act.activities = 1
  if A.limits.activities[act.type] then redis.call('HINCRBY', STATS, 'n:' .. act.type, 1) end
  for _, field in ipairs(COUNTERS) do
    local n = act[field]
    if n > 0 then
      redis.call('HINCRBY', STATS, field, n)
      redis.call('HINCRBY', TOTALS, field, n)
    end
  end
  add_xp(act.xp, act.type)
  if act.streak then
    local h = hash(STREAK)
    local before = {current = num(h.current, 0), longest = num(h.longest, 0), freezes = num(h.freezes, 0)}
    local st = before
    if record_day(h, act) then st = replay(h) end
    streak_out(st, before)
    out.streak.newDay = st ~= before
  end
end

local function finish()
  local current = num(redis.call('HGET', STREAK, 'current'), 0)
  for _, rule in ipairs(A.rules) do
    local metric, threshold, id, xp = rule[1], rule[2], rule[3], rule[4]
    local value = current
    if metric ~= 'streak' then value = num(redis.call('HGET', TOTALS, metric), 0) end
    if value >= threshold and redis.call('HSETNX', ACH, id, A.now) == 1 then
      table.insert(out.achievements, id)
      add_xp(xp, 'achievement')
    end
  end
  redis.call('EXPIREAT', STATS, A.statsExpireAt)
  out.xp.total = num(redis.call('HGET', TOTALS, 'xp'), 0)
  out.xp.week = num(redis.call('HGET', WEEKLY, A.week), 0)
  out.stats = redis.call('HGETALL', STATS)
  return cjson.encode(out)
end

-- Optimistic concurrency: HSET the fields only if the hash is still at the version the caller
-- read ('' = the hash must not exist); false on a conflict.
local function save_versioned(key, expected, fields)
  local version = redis.call('HGET', key, 'version')
  if version == false then version = '' end
  if version ~= expected then return false end
  redis.call('HSET', key, unpack(fields))
  out.version = redis.call('HINCRBY', key, 'version', 1)
  return true
end
"""

# An activity (a learner's message, a completed item, an explicit report). A.act: type, xp,
# messages, seconds, items, streak (counts toward the streak), id ('' = none), t, day, back, fwd.
RECORD_ACTIVITY = register_script(
    LIBRARY
    + r"""
local act = A.act
if act.id ~= '' then
  if redis.call('ZSCORE', SEEN, act.id) then
    -- a retry: change nothing, answer with the state as it is
    local h = hash(STREAK)
    local st = {current = num(h.current, 0), longest = num(h.longest, 0), freezes = num(h.freezes, 0)}
    streak_out(st, st)
    out.duplicate = true
    out.xp.total = num(redis.call('HGET', TOTALS, 'xp'), 0)
    out.stats = redis.call('HGETALL', STATS)
    return cjson.encode(out)
  end
end
local cap = over_limit(act)
if cap then return limited(cap) end
if act.id ~= '' then
  redis.call('ZADD', SEEN, A.now, act.id)
  redis.call('ZREMRANGEBYSCORE', SEEN, '-inf', A.seenSince)
end
apply_activity(act)
return finish()
"""
)

# Create or update a goal if its version is the one the caller read ('' = it must not exist).
# KEYS[8] goal, [9] active goals, [10] completed goals. A.goal: expect, create, maxActive,
# fields (flat list), id, completed, score (dueDate or '+inf'), completedAt, xp.
SAVE_GOAL = register_script(
    LIBRARY
    + r"""
local G = A.goal
if G.create and redis.call('ZCARD', KEYS[9]) >= G.maxActive then return cjson.encode({full = true}) end
if not save_versioned(KEYS[8], G.expect, G.fields) then return cjson.encode({conflict = true}) end
if G.completed then
  redis.call('ZREM', KEYS[9], G.id)
  redis.call('ZADD', KEYS[10], G.completedAt, G.id)
else
  redis.call('ZREM', KEYS[10], G.id)
  redis.call('ZADD', KEYS[9], G.score, G.id)
end
out.rewarded = false
if G.completed and redis.call('HSETNX', KEYS[8], 'rewarded', '1') == 1 then
  out.rewarded = true
  redis.call('HINCRBY', TOTALS, 'goals', 1)
  if redis.call('HINCRBY', STATS, 'goals', 1) <= A.goalXpPerDay then add_xp(G.xp, 'goal') end
end
return finish()
"""
)

# Save a learning path's progress if its version is the one the caller read, and count the
# nodes completed for the first time as learning items. KEYS[8] progress, [9] the learner's
# paths, [10] the path's awarded nodes. A.progress: expect, fields, pathId, updatedAt,
# completed (module/node list), itemXp, act (seconds, t, day, back, fwd).
SAVE_PROGRESS = register_script(
    LIBRARY
    + r"""
local P = A.progress
local new, members = 0, P.completed
for i = 1, #members, 500 do
  for _, known in ipairs(redis.call('SMISMEMBER', KEYS[10], unpack(members, i, math.min(i + 499, #members)))) do
    if known == 0 then new = new + 1 end
  end
end
local act = P.act
act.items, act.xp, act.streak, act.messages = new, new * P.itemXp, new > 0, 0
local cap = over_limit(act)
if cap then return limited(cap) end
if not save_versioned(KEYS[8], P.expect, P.fields) then return cjson.encode({conflict = true}) end
redis.call('ZADD', KEYS[9], P.updatedAt, P.pathId)
for i = 1, #members, 500 do redis.call('SADD', KEYS[10], unpack(members, i, math.min(i + 499, #members))) end
out.newItems = new
if new > 0 or act.seconds > 0 then apply_activity(act) end
return finish()
"""
)

# Outage repair: the streak becomes A.restore.current as of local day A.restore.day (lastAt
# A.restore.lastAt unless a later activity is on record); days after it are replayed on top.
RESTORE_STREAK = register_script(
    LIBRARY
    + r"""
local R = A.restore
local h = hash(STREAK)
local before = {current = num(h.current, 0), longest = num(h.longest, 0), freezes = num(h.freezes, 0)}
local last_day = tonumber(h.lastDay)
redis.call('ZREMRANGEBYSCORE', DAYS, '-inf', R.day)
save_base(h, {last = R.day, current = R.current, longest = math.max(before.longest, R.current),
              freezes = before.freezes})
redis.call('HSET', STREAK, 'restoredAt', A.now)
if last_day == nil or last_day <= R.day or h.lastAt == nil then
  redis.call('HSET', STREAK, 'lastAt', R.lastAt)
end
streak_out(replay(h), before)
return finish()
"""
)

# KEYS[1] a weekly leaderboard; ARGV member, top N, neighbours on each side.
# Replies {top (flat member/score), rank (0-based, -1 if absent), around (flat), first rank of around, size}.
READ_LEADERBOARD = register_script(
    r"""
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
local around, first = {}, -1
if rank then
  first = math.max(0, rank - tonumber(ARGV[3]))
  around = redis.call('ZREVRANGE', KEYS[1], first, rank + tonumber(ARGV[3]), 'WITHSCORES')
else
  rank = -1
end
return {top, rank, around, first, redis.call('ZCARD', KEYS[1])}
"""
)

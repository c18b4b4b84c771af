-- Shared by every runcast script (prepended to each). Every script gets all of the
-- session's keys, in SessionKeys.all() order, so Redis Cluster routes it to the one
-- slot of the session's hash tag and no key is reached without being declared.
local K = {
  events = KEYS[1], seq = KEYS[2], tasks = KEYS[3], specs = KEYS[4],
  entries = KEYS[5], leases = KEYS[6], attempts = KEYS[7], ended = KEYS[8],
  state = KEYS[9], appended = KEYS[10], control = KEYS[11], workers = KEYS[12],
}
local GROUP = 'workers'
-- The control stream only needs the commands the slowest live worker has not read.
local CONTROL_MAXLEN = 10000
local END_STATES = {
  task_completed = 'completed', task_failed = 'failed', task_cancelled = 'cancelled',
}

-- Redis's own clock: every worker and script agrees on it, whatever the hosts' clocks say.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function state_field(name)
  return redis.call('HGET', K.state, name) or ''
end

-- One event with the session's next seq. The stream is trimmed approximately (MAXLEN ~,
-- whole macro nodes: cheap) so Redis memory stays bounded; the recording serve node's
-- store keeps the full history.
local function append_event(event_json, src, src_seq)
  local seq = redis.call('INCR', K.seq)
  local maxlen = tonumber(state_field('events_maxlen')) or 100000
  redis.call('XADD', K.events, 'MAXLEN', '~', maxlen, '*',
    'seq', seq, 'event', event_json, 'src', src, 'src_seq', src_seq)
  return seq
end

local function append_all(events, first, src)
  local seq = 0
  for i = first, #events do
    seq = append_event(events[i], src, 0)
  end
  return seq
end

local function control_entry(op, task_id, by, reason, suspend)
  redis.call('XADD', K.control, 'MAXLEN', '~', CONTROL_MAXLEN, '*', 'op', op,
    'task_id', task_id, 'by', by, 'reason', reason, 'suspend', suspend,
    'on_budget', state_field('on_budget'))
end

-- A task entry nobody will run again: acknowledged and deleted, so the tasks stream and
-- its pending list only hold live work.
local function drop_entry(entry_id)
  redis.call('XACK', K.tasks, GROUP, entry_id)
  redis.call('XDEL', K.tasks, entry_id)
end

local function end_task(task_id, end_state)
  redis.call('HSET', K.ended, task_id, end_state)
  local entry = redis.call('HGET', K.entries, task_id)
  if entry then
    drop_entry(entry)
  end
  redis.call('HDEL', K.entries, task_id)
  redis.call('HDEL', K.leases, task_id)
end

-- Lua numbers are doubles, as Python floats are: '%.17g' round-trips them exactly, so
-- the spend is the same float sum a single host makes (INCRBYFLOAT would round it).
local function format_usd(value)
  return string.format('%.17g', value)
end

-- Mirrors executor.pricing.Budget.crossings: the thresholds newly crossed, in order.
-- Exhaustion pauses the session in the same step, so no claim succeeds after it.
local function budget_crossings(spent, warn_threshold)
  local crossed = {}
  local paused_now = 0
  local limit = tonumber(state_field('budget_usd'))
  if not limit then
    return crossed, paused_now
  end
  -- `*_announced` 0: crossed, its event not yet in the stream. The spend at the crossing
  -- is kept, so whichever worker announces it says what one host would have said.
  if state_field('warned') ~= '1' and spent >= warn_threshold * limit then
    redis.call('HSET', K.state, 'warned', '1', 'warn_announced', '0',
      'warned_usd', format_usd(spent))
    table.insert(crossed, 'warning')
  end
  if state_field('exhausted') ~= '1' and spent >= limit then
    redis.call('HSET', K.state, 'exhausted', '1', 'exhausted_announced', '0',
      'exhausted_usd', format_usd(spent))
    table.insert(crossed, 'exhausted')
    if state_field('paused') ~= '1' then
      paused_now = 1
      redis.call('HSET', K.state, 'paused', '1', 'paused_by', 'budget', 'pause_reason',
        string.format('budget exhausted: spent $%.4f of $%.4f', spent, limit))
    end
  end
  return crossed, paused_now
end

local function holds(lease, instance)
  return lease and string.sub(lease, 1, #instance + 1) == instance .. '|'
end

-- A crossing whose announcement is not in the stream yet (its worker's reply was lost,
-- or the worker died): every reply that carries this flag asks its worker to announce.
local function announce_pending()
  return (state_field('warned') == '1' and state_field('warn_announced') == '0')
    or (state_field('exhausted') == '1' and state_field('exhausted_announced') == '0')
end

-- Budget announcements go in once per crossing, whoever sends them and however often:
-- a warning only while one is crossed and unannounced. `kind` '' (not an announcement)
-- is always admitted.
local function admit_announcement(kind)
  if kind == 'budget_warning' then
    if state_field('warned') ~= '1' or state_field('warn_announced') == '1' then
      return false
    end
    redis.call('HSET', K.state, 'warn_announced', '1')
  elseif kind == 'budget_exhausted' then
    if state_field('exhausted') ~= '1' or state_field('exhausted_announced') == '1' then
      return false
    end
    -- An exhaustion announced supersedes a warning still pending: it would come after.
    redis.call('HSET', K.state, 'exhausted_announced', '1', 'warn_announced', '1')
  end
  return true
end

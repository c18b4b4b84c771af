-- submit(instance, budget_usd, prices, start_paused, on_budget, events_maxlen, n_tasks,
--        n_startup, [task_id, spec_json, queued_event_json] * n_tasks, startup events...)
--   -> how many tasks were new. Idempotent by task id: a second submit adds nothing twice.
local instance, budget_usd, prices, start_paused = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local on_budget, events_maxlen = ARGV[5], ARGV[6]
local n_tasks, n_startup = tonumber(ARGV[7]), tonumber(ARGV[8])
local FIRST_TASK = 9

local created = redis.pcall('XGROUP', 'CREATE', K.tasks, GROUP, '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end

-- HSETNX: the first submit sets the session up; later ones (more tasks) change nothing.
local new_session = redis.call('HSETNX', K.state, 'created_at', now_ms()) == 1
local defaults = {
  'paused', start_paused, 'paused_by', start_paused == '1' and 'startup' or '',
  'pause_reason', start_paused == '1' and 'started paused' or '',
  'budget_usd', budget_usd, 'spent_usd', '0', 'warned', '0', 'exhausted', '0',
  'on_budget', on_budget, 'prices', prices, 'events_maxlen', events_maxlen,
}
for i = 1, #defaults, 2 do
  redis.call('HSETNX', K.state, defaults[i], defaults[i + 1])
end
if new_session then
  -- As `runcast run` publishes at start-up: budget_changed, executor_paused(startup).
  local first_startup = FIRST_TASK + 3 * n_tasks
  for i = first_startup, first_startup + n_startup - 1 do
    append_event(ARGV[i], instance, 0)
  end
end

local added = 0
for i = 0, n_tasks - 1 do
  local base = FIRST_TASK + 3 * i
  local task_id = ARGV[base]
  if redis.call('HSETNX', K.specs, task_id, ARGV[base + 1]) == 1 then
    local entry = redis.call('XADD', K.tasks, '*', 'task_id', task_id)
    redis.call('HSET', K.entries, task_id, entry)
    append_event(ARGV[base + 2], instance, 0)
    added = added + 1
  end
end
if added > 0 then
  control_entry('tasks', '*', instance, 'submitted', '')
end
return added

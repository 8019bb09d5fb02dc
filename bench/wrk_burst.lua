-- wrk script of bench/rush_bench.py: a burst of exactly <count> POSTs, each with a token of its own,
-- then every wrk thread stops. Prints the run's figures as one JSON line (BENCH_RESULT), like
-- bench/wrk_scenario.lua, which the Python side reads the same way.
--
-- Arguments (after `--`): <method> <token file> <first> <count> <threads>
--   the tokens first .. first+count-1 of the file (1-based lines) are cut into one slice per wrk
--   thread (the last takes what the division leaves over).
--
-- Stopping without losing answers: a connection whose thread has no token left sends a spare
-- `GET /health/live` (answered 200, which no enrollment answers), and the thread stops once it has
-- received as many other answers as it had tokens. (Holding connections back instead, with wrk's
-- delay(), leaves them connected and silent: a sync gunicorn worker then waits on one until its
-- timeout kills it.)

statuses = {}
issued = 0
exhausted = 0 -- requests for which no token was left (sent as a GET /health/live, never a POST)
after_stop = 0 -- unused here (bench/wrk_scenario.lua's field), always 0
token_answers = 0 -- answers to this thread's token requests (any status but 200)
thread_index = 0

local method
local tokens = {}
local next_token = 1
local spare_request
local skip_first = false

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local function read_token_slice(path, first, last)
  local slice = {}
  local line_number = 0
  for line in io.lines(path) do
    line_number = line_number + 1
    if line_number > last then
      break
    end
    if line_number >= first then
      table.insert(slice, line)
    end
  end
  return slice
end

function init(args)
  method = args[1]
  local first, count = tonumber(args[3]), tonumber(args[4])
  local thread_count = tonumber(args[5])
  local per_thread = math.floor(count / thread_count)
  local my_first = first + thread_index * per_thread
  if thread_index == thread_count - 1 then
    per_thread = count - thread_index * per_thread
  end
  tokens = read_token_slice(args[2], my_first, my_first + per_thread - 1)
  spare_request = wrk.format("GET", "/health/live")
  -- wrk calls the first thread's request() once to check it, and never sends that one: the check
  -- gets the spare request, so that no participant is left out.
  skip_first = thread_index == 0
end

function request()
  if skip_first then
    skip_first = false
    return spare_request
  end
  local token = tokens[next_token]
  if token == nil then
    exhausted = exhausted + 1
    return spare_request
  end
  issued = issued + 1
  next_token = next_token + 1
  local body = nil
  if method ~= "GET" then
    body = ""
  end
  return wrk.format(method, nil, { ["Authorization"] = "Bearer " .. token }, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status ~= 200 then
    token_answers = token_answers + 1
    if token_answers >= #tokens then
      wrk.thread:stop()
    end
  end
end

local function to_json(value)
  local kind = type(value)
  if kind == "table" then
    local parts = {}
    for key, item in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(key), to_json(item)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "string" then
    return string.format("%q", value)
  elseif kind == "number" then
    return string.format("%.17g", value)
  else
    return tostring(value)
  end
end

function done(summary, latency, requests)
  local all_statuses, all_issued, all_exhausted, all_after_stop = {}, 0, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      all_statuses[status] = (all_statuses[status] or 0) + count
    end
    all_issued = all_issued + thread:get("issued")
    all_exhausted = all_exhausted + thread:get("exhausted")
    all_after_stop = all_after_stop + thread:get("after_stop")
  end
  io.write("BENCH_RESULT ", to_json({
    duration_us = summary.duration,
    requests = summary.requests,
    errors = summary.errors,
    latency_us = {
      p50 = latency:percentile(50),
      p90 = latency:percentile(90),
      p99 = latency:percentile(99),
      max = latency.max,
      mean = latency.mean,
    },
    statuses = all_statuses,
    issued = all_issued,
    exhausted = all_exhausted,
    after_stop = all_after_stop,
  }), "\n")
end

-- What bench/wrk_scenario.lua and bench/wrk_burst.lua share, loaded by each with
--   local common = dofile(<this directory> .. "wrk_common.lua")
-- in every Lua state wrk makes (one per thread, and one for setup and done).
--
-- The per-thread counters the scripts keep as globals (read by done() through thread:get):
-- statuses (status code as a string -> answers), issued, exhausted; thread_index is set by setup().

local common = {}

-- setup/done state: the threads, in the order setup() saw them.
local threads = {}

function common.setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local function read_lines(path, first, last)
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

-- This thread's tokens: the lines first .. first+count-1 of the file (1-based) cut into one disjoint
-- slice per wrk thread, the last taking what the division leaves over.
function common.token_slice(path, first, count, thread_count, index)
  local per_thread = math.floor(count / thread_count)
  local my_first = first + index * per_thread
  if index == thread_count - 1 then
    per_thread = count - index * per_thread
  end
  return read_lines(path, my_first, my_first + per_thread - 1)
end

-- wrk.format writes Content-Length only for a body: a POST gets an empty one, a GET none.
function common.format_request(method, headers)
  local body = nil
  if method ~= "GET" then
    body = ""
  end
  return wrk.format(method, nil, headers, body)
end

-- A request with `Authorization: Bearer <token>`.
function common.bearer_request(method, token)
  return common.format_request(method, { ["Authorization"] = "Bearer " .. token })
end

-- This thread's slice of the token file (common.token_slice) as requests, one per token, formatted
-- before the run: formatting each as it was sent cost wrk about 20 us of the machine's CPU per
-- request (of its 105), which the scenarios of one fixed request do not pay.
function common.pool_requests(method, path, first, count, thread_count, index)
  local requests = {}
  for _, token in ipairs(common.token_slice(path, first, count, thread_count, index)) do
    table.insert(requests, common.bearer_request(method, token))
  end
  return requests
end

function common.count_status(status)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

-- A minimal JSON encoder: numbers, strings, booleans and tables with string keys are all we print.
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

-- done(): the run's figures as one JSON line prefixed with BENCH_RESULT (bench/wrkrun.py reads it),
-- the threads' statuses summed, and each counter named in `counters` summed under its name.
function common.report(summary, latency, counters)
  local result = {
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
    statuses = {},
  }
  for _, name in ipairs(counters) do
    result[name] = 0
  end
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      result.statuses[status] = (result.statuses[status] or 0) + count
    end
    for _, name in ipairs(counters) do
      result[name] = result[name] + thread:get(name)
    end
  end
  io.write("BENCH_RESULT ", to_json(result), "\n")
end

return common

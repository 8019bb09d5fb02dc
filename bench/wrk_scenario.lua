-- wrk script of bench/http_bench.py: sends the scenario's requests, counts the answers per status,
-- and prints the run's figures as one JSON line (prefixed with BENCH_RESULT) for the Python side.
--
-- Arguments (after `--` on wrk's command line):
--   fixed <method> [token]
--       the same request every time, with `Authorization: Bearer <token>` when a token is given.
--   token-pool <method> <token file> <first> <count> <threads>
--       each request carries a token never used before: the tokens first .. first+count-1 of the
--       file (1-based lines) are cut into one disjoint slice per wrk thread, so no two requests of
--       the run (nor of another run given another range) share a participant. A thread that runs
--       out sends its requests without a token (answered 401) and counts them as `exhausted`, so
--       the Python side reports an invalid run instead of mistaking repeated tokens for load.
--
-- Each wrk thread runs this file in its own Lua state (init, request, response); setup and done run
-- in a separate one, which reads the threads' counters through thread:get.

-- Per-thread state (read by done() through thread:get).
statuses = {} -- status code (as a string) -> responses
issued = 0 -- requests handed to wrk by request()
exhausted = 0 -- requests sent without a token because this thread's slice was used up
thread_index = 0 -- set by setup()

local method
local fixed_request
local tokens = {}
local next_token = 1

-- setup/done state.
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

-- wrk.format writes Content-Length only for a body: a POST gets an empty one, a GET none.
local function format_request(headers)
  local body = nil
  if method ~= "GET" then
    body = ""
  end
  return wrk.format(method, nil, headers, body)
end

local function with_token(token)
  return format_request({ ["Authorization"] = "Bearer " .. token })
end

function init(args)
  local mode = args[1]
  method = args[2]
  if mode == "fixed" then
    if args[3] and args[3] ~= "" then
      fixed_request = with_token(args[3])
    else
      fixed_request = format_request({})
    end
  elseif mode == "token-pool" then
    local first, count, thread_count = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
    local per_thread = math.floor(count / thread_count)
    local my_first = first + thread_index * per_thread
    tokens = read_token_slice(args[3], my_first, my_first + per_thread - 1)
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  issued = issued + 1
  if fixed_request then
    return fixed_request
  end
  local token = tokens[next_token]
  if token == nil then
    exhausted = exhausted + 1
    return format_request({})
  end
  next_token = next_token + 1
  return with_token(token)
end

function response(status, headers, body)
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

function done(summary, latency, requests)
  local all_statuses, all_issued, all_exhausted = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      all_statuses[status] = (all_statuses[status] or 0) + count
    end
    all_issued = all_issued + thread:get("issued")
    all_exhausted = all_exhausted + thread:get("exhausted")
  end
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
    statuses = all_statuses,
    issued = all_issued,
    exhausted = all_exhausted,
  }
  io.write("BENCH_RESULT ", to_json(result), "\n")
end

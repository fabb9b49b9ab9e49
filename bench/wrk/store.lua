-- Store-probe requests for wrk, from the environment set by bench/bench.py:
-- POST {"op": STORE_OP, "key": "key-<n>"} to the URL's path, n random in
-- [0, STORE_KEYS); with STORE_OP=set the value written is STORE_VALUE.
local op = os.getenv("STORE_OP") or "get"
local keys = tonumber(os.getenv("STORE_KEYS") or "1000")
local value = os.getenv("STORE_VALUE") or "v"
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  -- Each thread its own sequence of keys.
  math.randomseed(os.time() * 100 + (thread_number or 0))
end

function request()
  local key = "key-" .. math.random(0, keys - 1)
  local body
  if op == "set" then
    body = '{"op":"set","key":"' .. key .. '","value":"' .. value .. '"}'
  else
    body = '{"op":"' .. op .. '","key":"' .. key .. '"}'
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end

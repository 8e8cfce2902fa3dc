-- wrk script: POST /batch/events.json with 50 distinct events per request.
-- Every event is new (thread id + counter in entityId and properties), so the
-- store's content-hash ids never dedupe and every request writes 50 events.
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  path = "/batch/events.json?accessKey=" .. args[1]
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local parts = {}
  for i = 1, 50 do
    counter = counter + 1
    parts[i] = string.format(
      '{"event":"rate","entityType":"user","entityId":"u%d","targetEntityType":"item",' ..
      '"targetEntityId":"i%d","properties":{"rating":%d},"eventTime":"2020-01-01T00:00:00.%03dZ","prId":"t%d-%d"}',
      counter % 10000, counter % 1700, counter % 5 + 1, counter % 1000, tid, counter)
  end
  return wrk.format("POST", path, nil, "[" .. table.concat(parts, ",") .. "]")
end

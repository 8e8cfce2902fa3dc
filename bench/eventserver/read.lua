-- wrk script: point reads of one entity's events (the read a recommender's
-- serving path does: GET /events.json?entityType=user&entityId=uN&limit=20).
function init(args)
  key = args[1]
  math.randomseed(os.time() + (tonumber(args[2]) or 0))
end
function request()
  return wrk.format("GET", string.format(
    "/events.json?accessKey=%s&entityType=user&entityId=u%d&limit=20", key, math.random(0, 9999)))
end

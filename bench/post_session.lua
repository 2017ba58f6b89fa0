-- wrk script for POST /api/sessions: every request creates one durable (committed, fsynced) session.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

wrk.method = "POST"
wrk.body = '{"name":"bench","working_directory":"/tmp"}'
wrk.headers["Content-Type"] = "application/json"

-- wrk script for GET /status (and nginx's static 200): the default GET plus the result line.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

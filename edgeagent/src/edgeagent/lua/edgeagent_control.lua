-- The control endpoint (content_by_lua in the loopback status server):
--   GET  /edgeagent/dynamic   -> 200 "version N"
--   POST /edgeagent/dynamic   body: a state (edgeagent_state.lua) -> 200 "applied version N"
-- Only the agent may use it: the listener is on loopback, and every request must carry
-- `Authorization: Bearer TOKEN`, TOKEN being control.token, which only the agent and root
-- can read (the master read it at init). Answers: 401 without the token, 405 for another
-- method, 413 (nginx) above client_max_body_size, 400 for a malformed body, 422 for a
-- certificate OpenSSL refuses, 409 for a version not above the current one, 412 for a
-- delta before the first full push (edgeagent_state.apply), 507 when the shared dict is
-- full. Nothing is applied unless everything is valid.
local state = require("edgeagent_state")

local _M = {}

local function answer(status, text)
    ngx.status = status
    ngx.header["Content-Type"] = "text/plain"
    ngx.say(text)
    return ngx.exit(status)
end

function _M.handle()
    if ngx.var.http_authorization ~= "Bearer " .. state.token then
        return answer(ngx.HTTP_UNAUTHORIZED, "missing or wrong token")
    end
    local method = ngx.req.get_method()
    if method == "GET" then
        return answer(ngx.HTTP_OK, string.format("version %d", state.version()))
    end
    if method ~= "POST" then
        return answer(ngx.HTTP_NOT_ALLOWED, "GET or POST")
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data() -- in memory: client_body_buffer_size = max size
    if body == nil then
        return answer(ngx.HTTP_BAD_REQUEST, "empty body")
    end
    local parsed, err = state.parse(body)
    if not parsed then
        return answer(ngx.HTTP_BAD_REQUEST, err)
    end
    local ok, status
    ok, err = state.check_certificates(parsed)
    if not ok then
        return answer(422, err)
    end
    ok, status, err = state.apply(parsed)
    if not ok then
        return answer(status, err)
    end
    return answer(ngx.HTTP_OK, string.format("applied version %d", parsed.version))
end

return _M

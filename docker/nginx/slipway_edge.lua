-- Slipway edge: the workspace route table in shared memory, changed at run time.
--
-- The table maps a username to "-" (not running: the stopped page) or
-- "address vscode_port jupyter_port gate_secret" (gate "-" when the container has none).
-- It changes by signed pushes to the loopback admin listener and by a signed pull of the
-- full table from the web app at start and every few seconds (a lost push heals).
-- Every value is whitelisted before it is stored; a push with one bad line changes nothing.

local ffi = require("ffi")
local balancer = require("ngx.balancer")
local lrucache = require("resty.lrucache")

ffi.cdef [[
const void *EVP_sha256(void);
unsigned char *HMAC(const void *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
]]

local C = ffi.C
local digest = ffi.new("unsigned char[32]")
local digest_len = ffi.new("unsigned int[1]")
local routes = ngx.shared.slipway_routes
local verified = lrucache.new(20000) -- per worker: edge cookie → its checked fields, until it expires
local state = ngx.shared.slipway_state
local var = ngx.var
local re_find = ngx.re.find
local byte, find, fmt, sub = string.byte, string.find, string.format, string.sub

local _M = { conf = {} }

local SIGNATURE_WINDOW = 60 -- seconds a signed request stays valid (its nonce is kept twice as long)
local IPV4_RE = [[^(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$]]
local IPV6_RE = [[^\[[0-9a-f:.]{2,45}\]$]]


local function hex(raw)
    return (raw:gsub(".", function(c) return fmt("%02x", byte(c)) end))
end

local function hmac_sha256(key, message)
    C.HMAC(C.EVP_sha256(), key, #key, message, #message, digest, digest_len)
    return ffi.string(digest, digest_len[0])
end

local function same(a, b)
    if #a ~= #b then
        return false
    end
    local diff = 0
    for i = 1, #a do
        diff = bit.bor(diff, bit.bxor(byte(a, i), byte(b, i)))
    end
    return diff == 0
end

--- The signing keys from the key file: current first, then the previous one during a rotation.
local function read_keys(path)
    local handle = io.open(path, "r")
    if not handle then
        return {}
    end
    local found = {}
    for line in handle:lines() do
        line = line:gsub("%s+", "")
        if #line >= 32 then
            found[#found + 1] = line
        end
    end
    handle:close()
    return found
end

local function keys()
    return _M.conf.keys
end

--- Called in init_by_lua (the master, before it drops privileges: the key file stays 0600) with
--- the values the template whitelisted. A reload reads the key file again: that is key rotation.
function _M.configure(conf)
    conf.keys = read_keys(conf.key_file)
    if #conf.keys == 0 then
        ngx.log(ngx.ERR, "slipway edge: no key in ", conf.key_file, ": every push and pull will fail")
    end
    conf.cookie_prefix = conf.cookie .. "="
    _M.conf = conf
end

--- "timestamp.nonce.hexmac" over method, path, timestamp, nonce and body, with the current key.
function _M.sign(method, path, body)
    local key = keys()[1]
    if not key then
        return nil
    end
    local ts = tostring(ngx.time())
    local nonce = hex(ngx.sha1_bin(ts .. ngx.now() .. ngx.worker.pid() .. math.random()))
    local mac = hex(hmac_sha256(key, method .. "\n" .. path .. "\n" .. ts .. "\n" .. nonce .. "\n" .. body))
    return ts .. "." .. nonce .. "." .. mac
end

--- True when `header` signs this request with a current or previous key, fresh and not replayed.
function _M.verify(header, method, path, body)
    if type(header) ~= "string" or #header > 200 then
        return false, "no signature"
    end
    local ts, nonce, mac = header:match("^(%d+)%.(%x+)%.(%x+)$")
    if not ts or math.abs(ngx.time() - tonumber(ts)) > SIGNATURE_WINDOW then
        return false, "stale or malformed signature"
    end
    local message = method .. "\n" .. path .. "\n" .. ts .. "\n" .. nonce .. "\n" .. body
    for _, key in ipairs(keys()) do
        if same(hex(hmac_sha256(key, message)), mac) then
            if not state:add("nonce:" .. nonce, true, SIGNATURE_WINDOW * 2) then
                return false, "replayed signature"
            end
            return true
        end
    end
    return false, "bad signature"
end

--- Parse and whitelist every line into parallel arrays (users, values, revocations); nil and the
--- first bad line's number unless all are good. 100,000 lines per full table: one pattern per
--- line, each distinct address checked once, no table per line.
local function parse(body)
    local users, values, revokes, count = {}, {}, {}, 0
    local replace = false
    local addresses = {}
    local number = 0
    for line in body:gmatch("[^\n]+") do
        number = number + 1
        if number == 1 and line == "replace" then
            replace = true
        else
            local user, address, vscode, jupyter, gate =
                line:match("^put ([a-z0-9][a-z0-9-]*) (%S+) ([1-9]%d?%d?%d?%d?) ([1-9]%d?%d?%d?%d?) ([%w_-]+)$")
            local value, revoked
            if user then
                local known = addresses[address]
                if known == nil then
                    known = (re_find(address, IPV4_RE, "jo") or re_find(address, IPV6_RE, "jo")) ~= nil
                    addresses[address] = known
                end
                if not known or tonumber(vscode) > 65535 or tonumber(jupyter) > 65535
                    or (gate ~= "-" and (#gate < 16 or #gate > 128)) then
                    return nil, number
                end
                value = sub(line, #user + 6)
            else
                local verb, rest
                verb, user, rest = line:match("^(%l+) ([a-z0-9][a-z0-9-]*)(.*)$")
                if (verb == "stop" or verb == "del") and rest == "" then
                    value = verb == "stop" and "-" or false
                elseif verb == "revoke" and (rest == " *" or rest:find("^ [1-9]%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?$")) then
                    -- "revoke user session_id": that session's edge cookies; "revoke user *": all so far
                    value, revoked = false, sub(rest, 2)
                else
                    return nil, number
                end
            end
            if #user > 32 or sub(user, -1) == "-" or user:find("--", 1, true) then
                return nil, number
            end
            count = count + 1
            users[count], values[count], revokes[count] = user, value, revoked or false
        end
    end
    return { users = users, values = values, revokes = revokes, count = count }, replace
end

--- Apply parsed operations; with `replace`, users absent from them are removed. Returns changes.
local function apply(ops, replace)
    local changed = 0
    local seen = replace and {} or nil
    local users, values, revokes = ops.users, ops.values, ops.revokes
    for i = 1, ops.count do
        local user, value, revoked = users[i], values[i], revokes[i]
        if revoked then
            local key = revoked == "*" and "ru:" .. user or "rs:" .. revoked
            state:set(key, ngx.time(), _M.conf.cookie_seconds + SIGNATURE_WINDOW)
            changed = changed + 1
        elseif value then
            if routes:get(user) ~= value then
                local ok, err = routes:safe_set(user, value)
                if not ok then
                    return nil, "route table full: " .. tostring(err)
                end
                changed = changed + 1
            end
            if seen then
                seen[user] = true
            end
        elseif routes:get(user) ~= nil then
            routes:delete(user)
            changed = changed + 1
        end
    end
    if seen then
        for _, user in ipairs(routes:get_keys(0)) do
            if not seen[user] then
                routes:delete(user)
                changed = changed + 1
            end
        end
        state:set("loaded_at", ngx.now())
    end
    if changed > 0 then
        -- Every remembered decision (`decided`, below) was made in an older generation: none is used again.
        state:incr("generation", 1, 0)
    end
    return changed
end

--- Replace the table with `body` (the web app's full table); nil and a reason on bad input.
function _M.load_table(body)
    local ops, replace = parse(body)
    if not ops then
        return nil, "bad line " .. tostring(replace)
    end
    if not replace then
        return nil, "not a full table"
    end
    return apply(ops, true)
end

--- Answer a refused push: logged at `level`, `status` and the reason in the body, nothing changed.
local function refuse(status, level, reason)
    ngx.log(level, "slipway edge: refused a push from ", ngx.var.remote_addr, ": ", reason)
    ngx.status = status
    ngx.say("refused: ", reason)
    return ngx.exit(status)
end

--- The admin request's body, from memory or from the temp file a large one was buffered to.
local function request_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then
        return body
    end
    local file = ngx.req.get_body_file()
    local handle = file and io.open(file, "rb")
    if not handle then
        return ""
    end
    body = handle:read("*a") or ""
    handle:close()
    return body
end

--- content_by_lua of the admin listener: a signed POST of route lines.
function _M.admin()
    if ngx.req.get_method() ~= "POST" or ngx.var.uri ~= "/routes" then
        return ngx.exit(404)
    end
    local body = request_body()
    local started, cpu = ngx.now(), os.clock()
    local ok, why = _M.verify(ngx.var.http_x_slipway_signature, "POST", "/routes", body)
    if not ok then
        return refuse(401, ngx.WARN, why)
    end
    local ops, replace = parse(body)
    if not ops then
        return refuse(400, ngx.WARN, "bad line " .. replace)
    end
    state:set("pushed_at", ngx.now())
    local changed, err = apply(ops, replace)
    if not changed then
        return refuse(507, ngx.ERR, err)
    end
    ngx.update_time()
    -- Wall and CPU time in the edge: on a loaded machine the second says what the push itself costs.
    ngx.say("ok ", changed, " ", fmt("%.1f", (ngx.now() - started) * 1000), "ms ",
        fmt("%.1f", (os.clock() - cpu) * 1000), "ms-cpu")
end

--- GET the full table from the web app over a cosocket (timers have no subrequests).
local function fetch()
    local conf = _M.conf
    local path = "/workspaces/_edge/routes"
    local signature = _M.sign("GET", path, "")
    if not signature then
        return nil, "no key in " .. conf.key_file
    end
    local sock = ngx.socket.tcp()
    sock:settimeouts(2000, 5000, 10000)
    local ok, err = sock:connect(conf.web_host, conf.web_port)
    if not ok then
        return nil, "connect: " .. err
    end
    sock:send("GET " .. path .. " HTTP/1.0\r\nHost: " .. conf.web_host .. "\r\nX-Slipway-Signature: "
        .. signature .. "\r\nConnection: close\r\n\r\n")
    local data, read_err, partial = sock:receive("*a")
    sock:close()
    data = data or partial
    if not data then
        return nil, "read: " .. tostring(read_err)
    end
    local head_end = data:find("\r\n\r\n", 1, true)
    if not head_end or not data:find("^HTTP/1%.%d 200 ") then
        return nil, "answer: " .. sub(data, 1, 60)
    end
    return sub(data, head_end + 4)
end

local function pull()
    local asked = ngx.now()
    local body, err = fetch()
    -- A push that landed while the table was in flight may be newer than it: keep the push and
    -- pull again at the next tick (loaded_at is left as it was).
    if body and (state:get("pushed_at") or 0) >= asked then
        ngx.log(ngx.NOTICE, "slipway edge: a push arrived during the pull; pulling again")
        return false
    end
    if body then
        local changed
        changed, err = _M.load_table(body)
        if changed then
            if changed > 0 then
                ngx.log(ngx.NOTICE, "slipway edge: full table loaded, ", changed, " changes")
            end
            return true
        end
    end
    ngx.log(ngx.ERR, "slipway edge: could not load the route table: ", err)
    return false
end

local function tick(premature)
    if premature then
        return
    end
    local now = ngx.now()
    local loaded = state:get("loaded_at")
    local tried = state:get("tried_at") or 0
    -- Until the first load succeeds retry every second; afterwards every `sync_seconds`.
    local due = loaded == nil and now - tried >= 1 or loaded ~= nil and now - loaded >= _M.conf.sync_seconds
    if due and now - tried >= 1 then
        state:set("tried_at", now)
        pull()
    end
end

--- init_worker_by_lua: one worker loads the table at start and re-checks it on a timer.
function _M.init_worker()
    if ngx.worker.id() ~= 0 then
        return
    end
    math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
    ngx.timer.at(0, tick)
    ngx.timer.every(1, tick)
end

--- user, app and table value of a workspace host `{user}-{app}.{domain}`; nil when it names none.
--- Plain finds and subs only: they compile in LuaJIT, where a pattern match would not.
local function lookup(host)
    local suffix = _M.conf.suffix
    local cut = #host - #suffix -- the label's length
    if cut <= 0 or find(host, suffix, cut + 1, true) ~= cut + 1 then
        return nil
    end
    local app
    if cut > 7 and find(host, "-vscode", cut - 6, true) == cut - 6 then
        app = "vscode"
    elseif cut > 8 and find(host, "-jupyter", cut - 7, true) == cut - 7 then
        app = "jupyter"
    else
        return nil
    end
    local user = sub(host, 1, cut - #app - 1)
    return user, app, routes:get(user)
end

--- A running route's fields for `app`: {target "address:port", gate secret or ""}.
local function peer_of(value, app)
    local address, vscode, jupyter, gate = value:match("^(%S+) (%d+) (%d+) (%S+)$")
    return { target = address .. ":" .. (app == "vscode" and vscode or jupyter), gate = gate == "-" and "" or gate }
end

--- Ends a request that cannot be routed: unknown host (`nil`) → 404, stopped workspace ("-") → the
--- stopped page.
local function refuse(value)
    if value == nil then
        return ngx.exit(404)
    end
    return ngx.exec("/_slipway/stopped")
end

--- rewrite_by_lua of the public listener's own pages (/_slipway/...): unknown host → 404, stopped →
--- the stopped page. A workspace's paths use `workspace()` instead.
function _M.route()
    if ngx.req.is_internal() then
        return
    end
    local _, _, value = lookup(var.host)
    if value == nil or value == "-" then
        return refuse(value)
    end
end

local MAX_COOKIE = 300 -- an edge cookie is ~150 bytes; anything longer is refused unread
local MAX_CANDIDATES = 8 -- a request stuffed with copies costs at most this many checks

--- The cache entry of an edge cookie whose signature (current or previous key) covers `host`;
--- nil when it does not. Remembered until the cookie expires.
local function verify_cookie(candidate, host, now)
    local user, sid, issued, expires, mac = candidate:match("^v1%.([a-z0-9-]+)%.(%d+)%.(%d+)%.(%d+)%.(%x+)$")
    if not user then
        return nil
    end
    local message = "v1|" .. host .. "|" .. user .. "|" .. sid .. "|" .. issued .. "|" .. expires
    for _, key in ipairs(keys()) do
        if same(hex(hmac_sha256(key, message)), mac) then
            local entry = { host = host, user = user, issued = tonumber(issued), expires = tonumber(expires),
                            session_key = "rs:" .. sid, user_key = "ru:" .. user }
            if entry.expires > now then
                verified:set(candidate, entry, entry.expires - now + 1)
            end
            return entry
        end
    end
    return nil
end

--- "ok" (and the cookie's entry), "renew" (valid, near expiry), "revoked", or nil: one edge cookie
--- for this host and owner.
local function check_cookie(candidate, host, owner, now)
    -- A signature is checked once per worker and cookie, then remembered: the HMAC would otherwise
    -- cost more than the proxying. Host, owner, expiry and revocation are checked every time.
    local entry = verified:get(candidate)
    if not entry or entry.host ~= host then
        entry = verify_cookie(candidate, host, now)
        if not entry then
            return nil
        end
    end
    if entry.user ~= owner or entry.expires <= now then
        return nil -- an admin let in by the config flag goes through the web app's (audited) check
    end
    local all_before = state:get(entry.user_key)
    if state:get(entry.session_key) or (all_before and entry.issued <= all_before) then
        return "revoked"
    end
    if entry.expires - now < _M.conf.renew_seconds then
        return "renew"
    end
    return "ok", entry
end

local function is_separator(c)
    return c == 59 or c == 32 or (c >= 9 and c <= 13) -- ";" or white space, as browsers split cookies
end

--- Where the cookie value starting at `from` ends; nil when it is longer than MAX_COOKIE bytes.
local function value_end(header, from)
    local limit = from + MAX_COOKIE -- a separator here at the latest
    for i = from, limit < #header and limit or #header do
        if is_separator(byte(header, i)) then
            return i - 1
        end
    end
    if #header < limit then
        return #header
    end
    return nil
end

--- The verdict on this request's edge cookies: "ok" (and its entry) for the first that passes,
--- else the first "revoked" or "renew", else nil. At most MAX_CANDIDATES copies are looked at.
local function cookie_verdict(header, host, owner, now)
    local prefix = _M.conf.cookie_prefix
    local seen, from, verdict = 0, 1, nil
    while seen < MAX_CANDIDATES do
        local s, e = find(header, prefix, from, true)
        if not s then
            break
        end
        from = e + 1
        if s == 1 or is_separator(byte(header, s - 1)) then
            seen = seen + 1
            local stop = value_end(header, from)
            if stop then
                local found, entry = check_cookie(sub(header, from, stop), host, owner, now)
                if found == "ok" then
                    return found, entry
                end
                verdict = verdict or found
            end
        end
    end
    return verdict
end

-- Per worker: a Cookie header → the decision its edge cookie earned on this host (target, gate,
-- user), for the table generation it was made in and until the cookie's renewal time. A browser
-- sends the same header request after request, so the common request is one table read, one
-- shared-dict read (the generation) and a clock compare. Every route change and revocation bumps
-- the generation, so no decision outlives the table it was made from.
local decided, decided_count = {}, 0
local MAX_DECIDED = 4096 -- then the whole table is dropped and refilled: ≤ ~10 MB a worker
local MAX_DECIDED_HEADER = 2048 -- longer Cookie headers are checked every time, never remembered

local function remember(header, decision)
    if #header > MAX_DECIDED_HEADER then
        return
    end
    if decided_count >= MAX_DECIDED then
        decided, decided_count = {}, 0
    end
    if not decided[header] then
        decided_count = decided_count + 1
    end
    decided[header] = decision
end

--- Hand the request to the balancer (its target), the gate header and the access log (user).
local function pass(decision)
    var.slipway_peer = decision.target
    if decision.gate ~= "" then
        var.slipway_gate = decision.gate
    end
    var.slipway_user = decision.user
end

--- rewrite_by_lua of a workspace's paths: the route and the owner check in one Lua entry.
--- A decision remembered for this Cookie header, host and table generation passes at once.
--- Otherwise: unknown host → 404, stopped → the stopped page; then a valid signed edge cookie
--- passes with no call to the web app (and is remembered). Otherwise (none, near expiry, another
--- user, an admin) one sub-request to the web app decides and may hand back a fresh cookie; a
--- revoked session is refused at once.
function _M.workspace()
    local host, header = var.host, var.http_cookie
    local generation = state:get("generation") -- read before the route: a change after it is a newer one
    local known = header and decided[header]
    local now = ngx.time()
    if known and known.host == host and known.generation == generation and now < known.renew_at then
        return pass(known)
    end
    local user, app, value = lookup(host)
    if value == nil or value == "-" then
        return refuse(value)
    end
    local decision = peer_of(value, app)
    local verdict, cookie = nil, nil
    if header then
        verdict, cookie = cookie_verdict(header, host, user, now)
    end
    if verdict == "ok" then
        decision.host, decision.user, decision.generation = host, user, generation
        decision.renew_at = cookie.expires - _M.conf.renew_seconds
        if generation then -- nil until the first table load
            remember(header, decision)
        end
        return pass(decision)
    end
    if verdict == "revoked" then
        return ngx.exit(401)
    end
    local answer = ngx.location.capture("/_slipway/auth")
    local status = answer.status
    if status == 200 then
        local fresh = answer.header["X-Slipway-Edge-Cookie"]
        if type(fresh) == "string" then
            var.slipway_set_cookie = fresh -- sent by add_header beside the workspace's own cookies
        end
        decision.user = answer.header["X-Slipway-User"] or ""
        return pass(decision)
    end
    if status == 401 or status == 403 then
        return ngx.exit(status)
    end
    return ngx.exit(503)
end

--- balancer_by_lua: the peer workspace() chose; keep-alive connections are pooled per peer.
function _M.balance()
    local ok, err = balancer.set_current_peer(var.slipway_peer)
    if not ok then
        ngx.log(ngx.ERR, "slipway edge: no peer: ", err)
        return ngx.exit(502)
    end
end

_M.hmac_sha256 = hmac_sha256
return _M

-- mioperf.lua: Wireshark dissectors for mioperf's own protocols.
--
-- hello (UDP and TCP 20009), lab (UDP and TCP 8120, with the stream
-- segment header), msg (TCP 7001), tcpfile (TCP 50002), stopwait (UDP
-- 50001) and window (UDP 50003: mioperf's TCP engine, one segment per
-- datagram, handed to Wireshark's own TCP dissector, with tcpfile above).
-- The wire contracts are shared/spec/protocols.md and src/wire/*.rs in
-- the mioperf repository; contrib/wireshark/README.md lists every field.
--
-- Load with `tshark -X lua_script:mioperf.lua` / `wireshark -X
-- lua_script:mioperf.lua`, or copy into ~/.local/lib/wireshark/plugins/.
-- Every protocol is registered on its default port(s) and offered for
-- "Decode As" on both udp.port and tcp.port (tshark: -d
-- udp.port==N,mioperf_hello); hello and stopwait also have heuristics.
--
-- Malformed input never raises a Lua error: it becomes expert info
-- (Analyze > Expert Information; filter `_ws.expert`).
--
-- Tested with Wireshark 4.0 (tests/wireshark.rs in the mioperf repository
-- captures real exchanges and checks every field decodes).

local DEFAULT_PORTS = {
    hello = 20009,
    lab = 8120,
    msg = 7001,
    tcpfile = 50002,
    stopwait = 50001,
    window = 50003,
}

-- The window server's segments are TCP; what TCP then carries (tcpfile)
-- is found through tcp.port with the UDP ports (see dissect_window), so
-- tcpfile is registered on the window port too. Nothing else of mioperf
-- uses TCP 50003.
local TCPFILE_TCP_PORTS = { DEFAULT_PORTS.tcpfile, DEFAULT_PORTS.window }

---------------------------------------------------------------------------
-- Shared helpers
---------------------------------------------------------------------------

local function endpoint(addr, port)
    return tostring(addr) .. ":" .. tostring(port)
end

-- Key of one direction of a conversation, and of the conversation itself
-- (both directions), from the addresses and ports of this layer.
local function direction_key(pinfo)
    return endpoint(pinfo.src, pinfo.src_port) .. ">" .. endpoint(pinfo.dst, pinfo.dst_port)
end

local function conversation_key(pinfo)
    local a = endpoint(pinfo.src, pinfo.src_port)
    local b = endpoint(pinfo.dst, pinfo.dst_port)
    if a < b then
        return a .. "|" .. b
    end
    return b .. "|" .. a
end

-- Which side is the server. A side on one of the protocol's default ports
-- is the server; otherwise (Decode As on another port) the first side
-- seen speaking in the conversation is the client, because in every
-- mioperf protocol the client speaks first. Decided once per frame and
-- remembered, so a second pass (Wireshark's GUI, tshark -2) agrees.
local first_speaker = {}
local from_server_memo = {}

local function from_server(pinfo, ports)
    local memo_key = tostring(pinfo.number) .. "/" .. direction_key(pinfo)
    local memo = from_server_memo[memo_key]
    if memo ~= nil then
        return memo
    end
    local src_known = ports[pinfo.src_port] ~= nil
    local dst_known = ports[pinfo.dst_port] ~= nil
    local result
    if src_known and not dst_known then
        result = true
    elseif dst_known and not src_known then
        result = false
    else
        local conv = conversation_key(pinfo)
        local me = endpoint(pinfo.src, pinfo.src_port)
        if first_speaker[conv] == nil then
            first_speaker[conv] = me
        end
        result = first_speaker[conv] ~= me
    end
    from_server_memo[memo_key] = result
    return result
end

-- A set of ports, for from_server.
local function port_set(...)
    local set = {}
    for _, p in ipairs({ ... }) do
        set[p] = true
    end
    return set
end

-- Per-frame memory for state that depends on earlier frames (what a lab
-- client asked for, whether a tcpfile line was seen): computed on the
-- first pass in frame order, replayed on later passes.
local function memo_table()
    local t = {}
    return function(pinfo, key, compute)
        local k = tostring(pinfo.number) .. "/" .. key
        local v = t[k]
        if v == nil then
            v = compute()
            t[k] = v
        end
        return v
    end
end

-- Offset of the first "\n" in tvb at or after off, or nil.
local function find_newline(tvb, off)
    local len = tvb:len()
    if off >= len then
        return nil
    end
    local s = tvb:raw(off, len - off)
    local i = string.find(s, "\n", 1, true)
    if i == nil then
        return nil
    end
    return off + i - 1
end

-- The text of a line range without its "\r\n" / "\n".
local function line_text(range)
    local s = range:raw()
    s = string.gsub(s, "\r?\n$", "")
    return s
end

-- Calls on_line(tree, line_range, text) for every complete line of a TCP
-- payload, asking TCP for more bytes when a line is incomplete. A line
-- longer than max_line is malformed: the rest is marked and consumed.
-- Returns what a TCP dissector returns.
local function dissect_lines(tvb, pinfo, tree, max_line, too_long_expert, on_line)
    local len = tvb:len()
    local off = 0
    while off < len do
        local nl = find_newline(tvb, off)
        if nl == nil then
            if len - off >= max_line then
                tree:add_tvb_expert_info(too_long_expert, tvb(off),
                    "line longer than " .. max_line .. " bytes without a newline")
                return len
            end
            pinfo.desegment_offset = off
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return len
        end
        local range = tvb:range(off, nl - off + 1)
        on_line(tree, range, line_text(range))
        off = nl + 1
    end
    return off
end

-- All-ASCII-digits check, and its value (nil when not digits).
local function decimal(s)
    if s == nil or s == "" or string.find(s, "^%d+$") == nil then
        return nil
    end
    return tonumber(s)
end

-- A decimal string as a UInt64 (Lua numbers lose precision past 2^53).
local function u64(s)
    local v = UInt64(0)
    for i = 1, #s do
        v = v * 10 + (string.byte(s, i) - 48)
    end
    return v
end

local function is_tcp(pinfo)
    return pinfo.port_type == 2 -- PT_TCP
end

---------------------------------------------------------------------------
-- hello
---------------------------------------------------------------------------

local hello = Proto("mioperf_hello", "mioperf hello (connection-ID registry)")
local HELLO_MAX_REQUEST = 256

local hf_hello = {
    kind = ProtoField.string("mioperf_hello.kind", "Kind", base.ASCII,
        "request, ok, reset or error"),
    line = ProtoField.string("mioperf_hello.line", "Line"),
    verb = ProtoField.string("mioperf_hello.verb", "Verb"),
    id = ProtoField.string("mioperf_hello.id", "ID (as written)"),
    id_value = ProtoField.uint16("mioperf_hello.id_value", "ID value", base.DEC),
    client_ip = ProtoField.string("mioperf_hello.client_ip", "Client address seen by the server"),
    client_port = ProtoField.uint16("mioperf_hello.client_port", "Client port seen by the server", base.DEC),
    reason = ProtoField.string("mioperf_hello.reason", "Error reason"),
}
hello.fields = hf_hello

local ef_hello = {
    malformed = ProtoExpert.new("mioperf_hello.malformed", "Malformed hello message",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("mioperf_hello.too_long", "hello line over 256 bytes",
        expert.group.MALFORMED, expert.severity.ERROR),
    reset = ProtoExpert.new("mioperf_hello.reset", "ID already registered (RESET)",
        expert.group.RESPONSE_CODE, expert.severity.NOTE),
    error = ProtoExpert.new("mioperf_hello.error_answer", "Server answered ERROR",
        expert.group.RESPONSE_CODE, expert.severity.WARN),
}
hello.experts = { ef_hello.malformed, ef_hello.too_long, ef_hello.reset, ef_hello.error }

-- Adds one word of a line (1-based start in text) as a field.
local function add_word(tree, field, range, start, word, value)
    if start == nil or word == nil then
        return nil
    end
    return tree:add(field, range:range(start - 1, #word), value ~= nil and value or word)
end

local function dissect_hello_line(tree, range, text, pinfo)
    local t = tree:add(hello, range)
    t:add(hf_hello.line, range, text)
    local verb = string.match(text, "^(%S+)")
    local info
    if verb == "HELLO" then
        local id = string.match(text, "^HELLO (%d%d?%d?%d?)$")
        t:add(hf_hello.kind, range, "request")
        add_word(t, hf_hello.verb, range, 1, "HELLO")
        if id then
            add_word(t, hf_hello.id, range, 7, id)
            add_word(t, hf_hello.id_value, range, 7, id, tonumber(id))
            info = "HELLO " .. id
        else
            t:add_tvb_expert_info(ef_hello.malformed, range, "HELLO without a 1-4 digit ID (server answers ERROR bad id)")
            info = "HELLO (bad id)"
        end
    elseif verb == "OK" then
        t:add(hf_hello.kind, range, "ok")
        add_word(t, hf_hello.verb, range, 1, "OK")
        local _, _, id, ip, port = string.find(text, "^OK (%d+) (%S+) (%d+)$")
        if id then
            add_word(t, hf_hello.id, range, 4, id)
            if #id <= 4 then
                add_word(t, hf_hello.id_value, range, 4, id, tonumber(id))
            end
            add_word(t, hf_hello.client_ip, range, 5 + #id, ip)
            local pn = tonumber(port)
            if pn ~= nil and pn <= 65535 then
                add_word(t, hf_hello.client_port, range, 6 + #id + #ip, port, pn)
            else
                t:add_tvb_expert_info(ef_hello.malformed, range, "port out of range")
            end
            info = "OK " .. id .. " " .. ip .. " " .. port
        else
            t:add_tvb_expert_info(ef_hello.malformed, range, "expected OK <id> <ip> <port>")
            info = "OK (malformed)"
        end
    elseif verb == "RESET" then
        t:add(hf_hello.kind, range, "reset")
        add_word(t, hf_hello.verb, range, 1, "RESET")
        local id = string.match(text, "^RESET (%d+)$")
        if id then
            add_word(t, hf_hello.id, range, 7, id)
            if #id <= 4 then
                add_word(t, hf_hello.id_value, range, 7, id, tonumber(id))
            end
            t:add_tvb_expert_info(ef_hello.reset, range, "ID " .. id .. " is registered already")
            info = "RESET " .. id
        else
            t:add_tvb_expert_info(ef_hello.malformed, range, "expected RESET <id>")
            info = "RESET (malformed)"
        end
    elseif verb == "ERROR" then
        t:add(hf_hello.kind, range, "error")
        add_word(t, hf_hello.verb, range, 1, "ERROR")
        local reason = string.match(text, "^ERROR (.*)$") or ""
        add_word(t, hf_hello.reason, range, 7, reason)
        t:add_tvb_expert_info(ef_hello.error, range, "ERROR " .. reason)
        info = "ERROR " .. reason
    else
        t:add_tvb_expert_info(ef_hello.malformed, range, "unknown verb (server answers ERROR unknown verb)")
        info = "unknown verb"
    end
    t:append_text(": " .. info)
    pinfo.cols.info:append(info .. " ")
end

function hello.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len == 0 then
        return 0
    end
    pinfo.cols.protocol = "mioperf hello"
    pinfo.cols.info:clear()
    if is_tcp(pinfo) then
        return dissect_lines(tvb, pinfo, tree, HELLO_MAX_REQUEST, ef_hello.too_long,
            function(tr, range, text)
                dissect_hello_line(tr, range, text, pinfo)
            end)
    end
    local range = tvb:range(0, len)
    if len >= HELLO_MAX_REQUEST then
        local t = tree:add(hello, range)
        t:add_tvb_expert_info(ef_hello.too_long, range, "datagram of " .. len .. " bytes (server answers ERROR line too long)")
        return len
    end
    dissect_hello_line(tree, range, line_text(range), pinfo)
    return len
end

local function hello_heuristic(tvb, pinfo, tree)
    local len = tvb:len()
    if len < 7 or len > HELLO_MAX_REQUEST then
        return false
    end
    if string.find(tvb:raw(0, len), "^HELLO %d%d?%d?%d?\r?\n?$") == nil then
        return false
    end
    hello.dissector(tvb, pinfo, tree)
    return true
end

---------------------------------------------------------------------------
-- lab
---------------------------------------------------------------------------

local lab = Proto("mioperf_lab", "mioperf lab (echo, generated file, paced stream)")
local LAB_SEGMENT_HEADER = 16
local LAB_TCP_SEGMENT_MAX = 16 * 1024 * 1024
local LAB_PORTS = port_set(DEFAULT_PORTS.lab)
local LAB_LINE_MAX = 64 * 1024

lab.prefs.udp_file_segment = Pref.uint("UDP file datagram size", 1400,
    "Size of a generated file's data datagrams (the server's `segment`); "
        .. "used to split a loopback GSO train back into datagrams")

local hf_lab = {
    kind = ProtoField.string("mioperf_lab.kind", "Kind", base.ASCII,
        "echo, file_request, stream_request, echo_reply, ready, file_data, done, error, segment"),
    request = ProtoField.string("mioperf_lab.request", "Request"),
    echo = ProtoField.string("mioperf_lab.echo", "Echoed text"),
    interval_ms = ProtoField.string("mioperf_lab.stream.interval_ms", "Stream interval (ms)"),
    count = ProtoField.uint64("mioperf_lab.stream.count", "Stream count", base.DEC),
    size = ProtoField.uint32("mioperf_lab.stream.size", "Stream segment size", base.DEC),
    file_size = ProtoField.uint64("mioperf_lab.file.size", "File size", base.DEC),
    error = ProtoField.string("mioperf_lab.error", "Error"),
    seq = ProtoField.uint64("mioperf_lab.seq", "Segment sequence number", base.DEC),
    sched_ns = ProtoField.uint64("mioperf_lab.sched_ns", "Scheduled time (ns since stream start)", base.DEC),
    filler_len = ProtoField.uint32("mioperf_lab.filler_len", "Filler length", base.DEC),
    data_len = ProtoField.uint32("mioperf_lab.file.data_len", "File data length", base.DEC),
}
lab.fields = hf_lab

local ef_lab = {
    malformed = ProtoExpert.new("mioperf_lab.malformed", "Malformed lab message",
        expert.group.MALFORMED, expert.severity.ERROR),
    short_segment = ProtoExpert.new("mioperf_lab.short_segment", "Stream segment shorter than its 16-byte header",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("mioperf_lab.too_long", "lab line over 64 KiB",
        expert.group.MALFORMED, expert.severity.ERROR),
    error = ProtoExpert.new("mioperf_lab.error_answer", "Server answered ERROR",
        expert.group.RESPONSE_CODE, expert.severity.WARN),
}
lab.experts = { ef_lab.malformed, ef_lab.short_segment, ef_lab.too_long, ef_lab.error }

-- What each lab conversation's client last asked for: { mode =
-- "echo"|"file"|"stream", size = segment size }.
local lab_mode = {}
local lab_memo = memo_table()

local function lab_parse_request(text)
    if string.sub(text, 1, 7) == "stream-" then
        local interval, count, size = string.match(text, "^stream%-([%d%.]+)%-(%d+)%-(%d+)$")
        local n = tonumber(size)
        -- What the server streams in: a size it accepts (16 bytes to
        -- tcp_segment_max); nil when it answers ERROR instead.
        local segment = nil
        if n ~= nil and n >= LAB_SEGMENT_HEADER and n <= LAB_TCP_SEGMENT_MAX then
            segment = n
        end
        return { mode = "stream", interval = interval, count = count, size = n, segment = segment }
    end
    if string.find(text, "^%d+$") then
        return { mode = "file", size = tonumber(text) }
    end
    return { mode = "echo" }
end

local function dissect_lab_request(tree, range, text, pinfo)
    local t = tree:add(lab, range)
    t:add(hf_lab.request, range, text)
    local req = lab_parse_request(text)
    local info
    if req.mode == "stream" then
        t:add(hf_lab.kind, range, "stream_request")
        if req.size then
            local s = 8
            add_word(t, hf_lab.interval_ms, range, s, req.interval)
            s = s + #req.interval + 1
            add_word(t, hf_lab.count, range, s, req.count, u64(req.count))
            s = s + #req.count + 1
            local size_text = string.match(text, "(%d+)$")
            if req.size <= 4294967295 then
                add_word(t, hf_lab.size, range, s, size_text, req.size)
            end
            if req.size < LAB_SEGMENT_HEADER then
                t:add_tvb_expert_info(ef_lab.malformed, range, "segment size below the 16-byte header (server answers ERROR)")
            end
            info = "stream request: interval " .. req.interval .. " ms, count " .. req.count .. ", size " .. req.size
        else
            t:add_tvb_expert_info(ef_lab.malformed, range, "expected stream-<interval_ms>-<count>-<size> (server answers ERROR)")
            info = "stream request (malformed)"
        end
    elseif req.mode == "file" then
        t:add(hf_lab.kind, range, "file_request")
        t:add(hf_lab.file_size, range:range(0, #text), u64(text))
        info = "file request: " .. text .. " bytes"
    else
        t:add(hf_lab.kind, range, "echo")
        t:add(hf_lab.echo, range, text)
        info = "echo: " .. text
    end
    t:append_text(": " .. info)
    pinfo.cols.info:append(info .. " ")
    lab_mode[conversation_key(pinfo)] = req
end

-- A server line or datagram that is not stream or file data.
local function dissect_lab_answer(tree, range, text, pinfo, mode)
    local t = tree:add(lab, range)
    local info
    local n = string.match(text, "^READY (%d+)$")
    local d = string.match(text, "^DONE (%d+)$")
    if mode == "file" and n then
        t:add(hf_lab.kind, range, "ready")
        add_word(t, hf_lab.file_size, range, 7, n, u64(n))
        info = "READY " .. n
    elseif mode == "file" and d then
        t:add(hf_lab.kind, range, "done")
        add_word(t, hf_lab.file_size, range, 6, d, u64(d))
        info = "DONE " .. d
    elseif string.sub(text, 1, 6) == "ERROR " then
        t:add(hf_lab.kind, range, "error")
        add_word(t, hf_lab.error, range, 7, string.sub(text, 7))
        t:add_tvb_expert_info(ef_lab.error, range, text)
        info = text
    else
        t:add(hf_lab.kind, range, "echo_reply")
        t:add(hf_lab.echo, range, text)
        info = "echo reply: " .. text
    end
    t:append_text(": " .. info)
    pinfo.cols.info:append(info .. " ")
end

local function dissect_lab_segment(tree, range, pinfo)
    local t = tree:add(lab, range)
    t:add(hf_lab.kind, range, "segment")
    if range:len() < LAB_SEGMENT_HEADER then
        t:add_tvb_expert_info(ef_lab.short_segment, range, "segment of " .. range:len() .. " bytes")
        return
    end
    t:add(hf_lab.seq, range:range(0, 8))
    t:add(hf_lab.sched_ns, range:range(8, 8))
    t:add(hf_lab.filler_len, range:range(LAB_SEGMENT_HEADER), range:len() - LAB_SEGMENT_HEADER)
    local seq = range:range(0, 8):uint64()
    t:append_text(": segment " .. tostring(seq) .. " @ " .. tostring(range:range(8, 8):uint64()) .. " ns")
    pinfo.cols.info:append("seq=" .. tostring(seq) .. " ")
end

local function dissect_lab_file_data(tree, range, pinfo)
    local t = tree:add(lab, range)
    t:add(hf_lab.kind, range, "file_data")
    t:add(hf_lab.data_len, range, range:len())
    t:append_text(": " .. range:len() .. " bytes of file data")
    pinfo.cols.info:append(range:len() .. " bytes of file data ")
end

local function lab_current_mode(pinfo)
    return lab_memo(pinfo, direction_key(pinfo), function()
        return lab_mode[conversation_key(pinfo)] or { mode = "echo" }
    end)
end

local function dissect_lab_tcp_server(tvb, pinfo, tree, req)
    local len = tvb:len()
    if req.mode == "stream" and req.segment then
        local off = 0
        -- An ERROR line can only come before any segment.
        if tvb:raw(0, math.min(len, 6)) == string.sub("ERROR ", 1, math.min(len, 6)) then
            return dissect_lines(tvb, pinfo, tree, LAB_LINE_MAX, ef_lab.too_long, function(tr, range, text)
                dissect_lab_answer(tr, range, text, pinfo, req.mode)
            end)
        end
        while off < len do
            if len - off < req.segment then
                pinfo.desegment_offset = off
                pinfo.desegment_len = req.segment - (len - off)
                return len
            end
            dissect_lab_segment(tree, tvb:range(off, req.segment), pinfo)
            off = off + req.segment
        end
        return off
    end
    if req.mode == "file" then
        -- "READY N\n" opens the answer; everything after it is data. The
        -- pattern (A-Z) never contains a space, so data never looks like it.
        local head = tvb:raw(0, math.min(len, 6))
        if head == string.sub("READY ", 1, #head) or head == string.sub("ERROR ", 1, #head) then
            local nl = find_newline(tvb, 0)
            if nl == nil then
                if len >= LAB_LINE_MAX then
                    tree:add_tvb_expert_info(ef_lab.too_long, tvb(), "answer line without a newline")
                    return len
                end
                pinfo.desegment_offset = 0
                pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
                return len
            end
            local range = tvb:range(0, nl + 1)
            dissect_lab_answer(tree, range, line_text(range), pinfo, req.mode)
            if nl + 1 < len then
                dissect_lab_file_data(tree, tvb:range(nl + 1), pinfo)
            end
            return len
        end
        dissect_lab_file_data(tree, tvb:range(0), pinfo)
        return len
    end
    return dissect_lines(tvb, pinfo, tree, LAB_LINE_MAX, ef_lab.too_long, function(tr, range, text)
        dissect_lab_answer(tr, range, text, pinfo, req.mode)
    end)
end

-- A captured UDP payload may be several datagrams: on loopback the kernel
-- records a GSO train (the server joins equal-sized datagrams into one
-- sendmsg) as one packet. Each piece is `size` bytes, the last possibly
-- shorter.
local function split_train(tvb, size, each)
    local len = tvb:len()
    local off = 0
    while off < len do
        local n = math.min(size, len - off)
        each(tvb:range(off, n))
        off = off + n
    end
end

local function dissect_lab_udp_server(tvb, pinfo, tree, req)
    local len = tvb:len()
    local head = tvb:raw(0, math.min(len, 6))
    if head == "ERROR " then
        local range = tvb:range(0, len)
        dissect_lab_answer(tree, range, line_text(range), pinfo, req.mode)
    elseif req.mode == "stream" and req.segment then
        split_train(tvb, req.segment, function(range)
            dissect_lab_segment(tree, range, pinfo)
        end)
    elseif req.mode == "file" then
        split_train(tvb, lab.prefs.udp_file_segment, function(range)
            local s = range:raw(0, math.min(range:len(), 6))
            if s == "READY " or string.sub(s, 1, 5) == "DONE " then
                dissect_lab_answer(tree, range, line_text(range), pinfo, req.mode)
            else
                dissect_lab_file_data(tree, range, pinfo)
            end
        end)
    else
        local range = tvb:range(0, len)
        dissect_lab_answer(tree, range, range:raw(), pinfo, req.mode)
    end
    return len
end

function lab.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len == 0 then
        return 0
    end
    pinfo.cols.protocol = "mioperf lab"
    pinfo.cols.info:clear()
    if from_server(pinfo, LAB_PORTS) then
        local req = lab_current_mode(pinfo)
        if is_tcp(pinfo) then
            return dissect_lab_tcp_server(tvb, pinfo, tree, req)
        end
        return dissect_lab_udp_server(tvb, pinfo, tree, req)
    end
    if is_tcp(pinfo) then
        return dissect_lines(tvb, pinfo, tree, LAB_LINE_MAX, ef_lab.too_long, function(tr, range, text)
            dissect_lab_request(tr, range, text, pinfo)
        end)
    end
    local range = tvb:range(0, len)
    -- Over UDP the datagram is the request, unchanged (no newline rule).
    dissect_lab_request(tree, range, range:raw(), pinfo)
    return len
end

---------------------------------------------------------------------------
-- msg
---------------------------------------------------------------------------

local msg = Proto("mioperf_msg", "mioperf msg (length-prefixed message with receipt)")
local MSG_HEADER = 4
local MSG_PORTS = port_set(DEFAULT_PORTS.msg)
local MSG_DEFAULT_MAX = 64 * 1024 * 1024
-- Longest answer a msg server sends ("ERR too large 4294967295" is 24).
local MSG_MAX_ANSWER = 64

local hf_msg = {
    len = ProtoField.uint32("mioperf_msg.len", "Frame length", base.DEC),
    payload = ProtoField.bytes("mioperf_msg.payload", "Payload"),
    receipt = ProtoField.string("mioperf_msg.receipt", "Receipt"),
    receipt_len = ProtoField.uint32("mioperf_msg.receipt_len", "Receipt: bytes received", base.DEC),
    error = ProtoField.string("mioperf_msg.error", "Error"),
    max = ProtoField.uint32("mioperf_msg.max", "Server's limit", base.DEC),
}
msg.fields = hf_msg

local ef_msg = {
    malformed = ProtoExpert.new("mioperf_msg.malformed", "Malformed msg answer",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_large = ProtoExpert.new("mioperf_msg.too_large", "Frame larger than the default msg_max (64 MiB)",
        expert.group.PROTOCOL, expert.severity.WARN),
    error = ProtoExpert.new("mioperf_msg.error_answer", "Server answered ERR",
        expert.group.RESPONSE_CODE, expert.severity.WARN),
}
msg.experts = { ef_msg.malformed, ef_msg.too_large, ef_msg.error }

local function dissect_msg_frame(tree, tvb, off, l, pinfo, server)
    local range = tvb:range(off, MSG_HEADER + l)
    local t = tree:add(msg, range)
    t:add(hf_msg.len, tvb:range(off, MSG_HEADER))
    local info
    if server then
        local body = l > 0 and tvb:range(off + MSG_HEADER, l) or nil
        local text = body and body:raw() or ""
        local ok = string.match(text, "^OK (%d+)$")
        local max = string.match(text, "^ERR too large (%d+)$")
        if ok then
            t:add(hf_msg.receipt, body, text)
            if tonumber(ok) <= 4294967295 then
                t:add(hf_msg.receipt_len, body:range(3), tonumber(ok))
            end
            info = "receipt " .. text
        elseif max then
            t:add(hf_msg.error, body, text)
            if tonumber(max) <= 4294967295 then
                t:add(hf_msg.max, body:range(14), tonumber(max))
            end
            t:add_tvb_expert_info(ef_msg.error, body, text)
            info = text
        else
            t:add_tvb_expert_info(ef_msg.malformed, range, "expected OK <L> or ERR too large <max>")
            info = "malformed answer"
        end
    else
        if l > 0 then
            t:add(hf_msg.payload, tvb:range(off + MSG_HEADER, l))
        end
        info = "frame of " .. l .. " bytes"
    end
    t:append_text(": " .. info)
    pinfo.cols.info:append(info .. " ")
end

function msg.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len == 0 then
        return 0
    end
    pinfo.cols.protocol = "mioperf msg"
    pinfo.cols.info:clear()
    local server = from_server(pinfo, MSG_PORTS)
    local off = 0
    while off < len do
        if len - off < MSG_HEADER then
            pinfo.desegment_offset = off
            pinfo.desegment_len = MSG_HEADER - (len - off)
            return len
        end
        local l = tvb:range(off, MSG_HEADER):uint()
        if not server and l > MSG_DEFAULT_MAX then
            -- The server answers ERR and closes; it reads no body, so
            -- neither do we.
            local t = tree:add(msg, tvb:range(off))
            t:add(hf_msg.len, tvb:range(off, MSG_HEADER))
            t:add_tvb_expert_info(ef_msg.too_large, tvb:range(off, MSG_HEADER),
                "length " .. l .. " above 67108864: a default server answers ERR too large")
            pinfo.cols.info:append("frame of " .. l .. " bytes (too large) ")
            return len
        end
        if server and l > MSG_MAX_ANSWER then
            -- Receipts are a few bytes: this is not a msg server talking,
            -- and waiting for l bytes would hold the rest of the stream.
            local t = tree:add(msg, tvb:range(off))
            t:add(hf_msg.len, tvb:range(off, MSG_HEADER))
            t:add_tvb_expert_info(ef_msg.malformed, tvb:range(off, MSG_HEADER),
                "answer of " .. l .. " bytes: receipts are at most " .. MSG_MAX_ANSWER)
            return len
        end
        if len - off - MSG_HEADER < l then
            pinfo.desegment_offset = off
            pinfo.desegment_len = l - (len - off - MSG_HEADER)
            return len
        end
        dissect_msg_frame(tree, tvb, off, l, pinfo, server)
        off = off + MSG_HEADER + l
    end
    return off
end

---------------------------------------------------------------------------
-- tcpfile
---------------------------------------------------------------------------

local tcpfile = Proto("mioperf_tcpfile", "mioperf tcpfile (file GET/PUT)")
local TCPFILE_MAX_REQUEST = 1024
local TCPFILE_PORTS = port_set(DEFAULT_PORTS.tcpfile, DEFAULT_PORTS.window)

local hf_tcpfile = {
    request = ProtoField.string("mioperf_tcpfile.request", "Request line"),
    name = ProtoField.string("mioperf_tcpfile.name", "File name"),
    method = ProtoField.string("mioperf_tcpfile.method", "Method"),
    size = ProtoField.uint64("mioperf_tcpfile.size", "PUT size", base.DEC),
    answer = ProtoField.string("mioperf_tcpfile.answer", "Answer line"),
    status = ProtoField.string("mioperf_tcpfile.status", "Status"),
    answer_size = ProtoField.uint64("mioperf_tcpfile.answer_size", "Size (GET: to follow; PUT: stored)", base.DEC),
    error = ProtoField.string("mioperf_tcpfile.error", "Error"),
    data_len = ProtoField.uint32("mioperf_tcpfile.data_len", "File data length", base.DEC),
}
tcpfile.fields = hf_tcpfile

local ef_tcpfile = {
    malformed = ProtoExpert.new("mioperf_tcpfile.malformed", "Malformed tcpfile line",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_long = ProtoExpert.new("mioperf_tcpfile.too_long", "tcpfile request over 1024 bytes",
        expert.group.MALFORMED, expert.severity.ERROR),
    error = ProtoExpert.new("mioperf_tcpfile.error_answer", "Server answered ERROR",
        expert.group.RESPONSE_CODE, expert.severity.WARN),
}
tcpfile.experts = { ef_tcpfile.malformed, ef_tcpfile.too_long, ef_tcpfile.error }

-- Whether each direction still expects its first line ("line") or is
-- in its data ("data"). A frame may hold several calls (window's GSO
-- trains), so the decision is remembered per frame and call: the first
-- pass decides in order, later passes replay.
local tcpfile_phase = {}
local tcpfile_decided = {}
local tcpfile_calls = { frame = -1, n = 0 }

-- Counts the calls within one frame; returns the count so far.
local function tcpfile_next_call(pinfo)
    if tcpfile_calls.frame ~= pinfo.number then
        tcpfile_calls.frame = pinfo.number
        tcpfile_calls.n = 0
    end
    tcpfile_calls.n = tcpfile_calls.n + 1
    return tcpfile_calls.n
end

local function tcpfile_expects_line(pinfo, dir)
    local key = tostring(pinfo.number) .. "/" .. tcpfile_calls.n .. "/" .. dir
    local d = tcpfile_decided[key]
    if d == nil then
        d = tcpfile_phase[dir] ~= "data"
        tcpfile_decided[key] = d
    end
    return d
end

local function trim(s)
    return (string.gsub(s, "^%s*(.-)%s*$", "%1"))
end

local function dissect_tcpfile_request(t, range, text)
    t:add(hf_tcpfile.request, range, text)
    -- Fields are read from the right, so a name may contain ':'.
    local name, method, size = string.match(text, "^(.*):%s*(PUT)%s*:%s*(%d+)%s*$")
    if name == nil then
        name, method = string.match(text, "^(.*):%s*(%u+)%s*$")
    end
    if name == nil or (method ~= "GET" and method ~= "PUT") then
        t:add_tvb_expert_info(ef_tcpfile.malformed, range, "expected <name>:GET, <name>:PUT or <name>:PUT:<size>")
        return "malformed request"
    end
    name = trim(name)
    t:add(hf_tcpfile.name, range, name)
    t:add(hf_tcpfile.method, range, method)
    local info = method .. " " .. name
    if size then
        t:add(hf_tcpfile.size, range, u64(size))
        info = info .. " (" .. size .. " bytes)"
    end
    return info
end

local function dissect_tcpfile_answer(t, range, text)
    t:add(hf_tcpfile.answer, range, text)
    local ok = string.match(text, "^OK (%d+)$")
    if ok then
        t:add(hf_tcpfile.status, range:range(0, 2), "OK")
        t:add(hf_tcpfile.answer_size, range:range(3, #ok), u64(ok))
        return "OK " .. ok
    end
    local reason = string.match(text, "^ERROR (.*)$")
    if reason then
        t:add(hf_tcpfile.status, range:range(0, 5), "ERROR")
        t:add(hf_tcpfile.error, range:range(6, #reason), reason)
        t:add_tvb_expert_info(ef_tcpfile.error, range, text)
        return text
    end
    t:add_tvb_expert_info(ef_tcpfile.malformed, range, "expected OK <size> or ERROR <reason>")
    return "malformed answer"
end

function tcpfile.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len == 0 then
        return 0
    end
    pinfo.cols.protocol = "mioperf tcpfile"
    tcpfile_next_call(pinfo)
    pinfo.cols.info:clear()
    local server = from_server(pinfo, TCPFILE_PORTS)
    local dir = direction_key(pinfo)
    local off = 0
    if tcpfile_expects_line(pinfo, dir) then
        local nl = find_newline(tvb, 0)
        if nl == nil then
            if len >= TCPFILE_MAX_REQUEST then
                local t = tree:add(tcpfile, tvb())
                t:add_tvb_expert_info(ef_tcpfile.too_long, tvb(), "no newline in the first " .. len .. " bytes")
                return len
            end
            pinfo.desegment_offset = 0
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return len
        end
        tcpfile_phase[dir] = "data"
        local range = tvb:range(0, nl + 1)
        local t = tree:add(tcpfile, range)
        local text = line_text(range)
        local info
        if server then
            info = dissect_tcpfile_answer(t, range, text)
        else
            info = dissect_tcpfile_request(t, range, text)
        end
        t:append_text(": " .. info)
        pinfo.cols.info:append(info .. " ")
        off = nl + 1
    end
    if off < len then
        local range = tvb:range(off)
        local t = tree:add(tcpfile, range)
        t:add(hf_tcpfile.data_len, range, len - off)
        t:append_text(": " .. (len - off) .. " bytes of file data")
        pinfo.cols.info:append((len - off) .. " bytes of file data ")
    end
    return len
end

---------------------------------------------------------------------------
-- stopwait
---------------------------------------------------------------------------

local stopwait = Proto("mioperf_stopwait", "mioperf stopwait (stop-and-wait file transfer)")
local SW_HEADER = 7
local SW_MAX_MESSAGE = 100
local SW_TYPES = { G = "GET", P = "PUT", A = "ACK", D = "DTA", F = "FIN", E = "ERR" }

local hf_sw = {
    type = ProtoField.string("mioperf_stopwait.type", "Type", base.ASCII, "G, P, A, D, F or E"),
    type_name = ProtoField.string("mioperf_stopwait.type_name", "Type name"),
    bit = ProtoField.string("mioperf_stopwait.bit", "Alternating bit", base.ASCII, "0, 1, or F on FIN and its ACK"),
    block = ProtoField.uint32("mioperf_stopwait.block", "Block number", base.DEC),
    name = ProtoField.string("mioperf_stopwait.name", "File name"),
    data = ProtoField.bytes("mioperf_stopwait.data", "Data"),
    data_len = ProtoField.uint32("mioperf_stopwait.data_len", "Data length", base.DEC),
    text = ProtoField.string("mioperf_stopwait.text", "Text"),
}
stopwait.fields = hf_sw

local ef_sw = {
    short = ProtoExpert.new("mioperf_stopwait.short", "stopwait datagram shorter than its 7-byte header",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_type = ProtoExpert.new("mioperf_stopwait.bad_type", "Unknown stopwait type (opcode)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_bit = ProtoExpert.new("mioperf_stopwait.bad_bit", "Alternating bit not 0, 1 or F",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_block = ProtoExpert.new("mioperf_stopwait.bad_block", "Block number not 5 ASCII digits",
        expert.group.MALFORMED, expert.severity.ERROR),
    long = ProtoExpert.new("mioperf_stopwait.long", "Message over 100 bytes",
        expert.group.MALFORMED, expert.severity.ERROR),
    error = ProtoExpert.new("mioperf_stopwait.error_answer", "ERR datagram",
        expert.group.RESPONSE_CODE, expert.severity.WARN),
}
stopwait.experts = { ef_sw.short, ef_sw.bad_type, ef_sw.bad_bit, ef_sw.bad_block, ef_sw.long, ef_sw.error }

function stopwait.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "mioperf stopwait"
    local t = tree:add(stopwait, tvb())
    if len < SW_HEADER then
        t:add_tvb_expert_info(ef_sw.short, tvb(), "datagram of " .. len .. " bytes")
        pinfo.cols.info:set("short datagram (" .. len .. " bytes)")
        return len
    end
    local ty = tvb:raw(0, 1)
    local name = SW_TYPES[ty]
    t:add(hf_sw.type, tvb:range(0, 1))
    if name then
        t:add(hf_sw.type_name, tvb:range(0, 1), name)
    else
        t:add_tvb_expert_info(ef_sw.bad_type, tvb:range(0, 1), "type byte " .. string.format("0x%02x", string.byte(ty)))
    end
    local bit = tvb:raw(1, 1)
    t:add(hf_sw.bit, tvb:range(1, 1))
    if bit ~= "0" and bit ~= "1" and bit ~= "F" then
        t:add_tvb_expert_info(ef_sw.bad_bit, tvb:range(1, 1), "bit byte " .. string.format("0x%02x", string.byte(bit)))
    end
    local block_text = tvb:raw(2, 5)
    local block = decimal(block_text)
    if block and #block_text == 5 then
        t:add(hf_sw.block, tvb:range(2, 5), block)
    else
        t:add_tvb_expert_info(ef_sw.bad_block, tvb:range(2, 5), "block field " .. string.format("%q", block_text))
    end
    local mlen = len - SW_HEADER
    if mlen > SW_MAX_MESSAGE then
        t:add_tvb_expert_info(ef_sw.long, tvb:range(SW_HEADER), mlen .. " bytes")
    end
    local info = (name or "?") .. " bit=" .. bit .. " block=" .. (block and tostring(block) or block_text)
    if mlen > 0 or ty == "D" then
        local m = mlen > 0 and tvb:range(SW_HEADER) or nil
        if ty == "G" or ty == "P" then
            t:add(hf_sw.name, m, m:raw())
            info = info .. " name=" .. m:raw()
        elseif ty == "D" then
            if m then
                t:add(hf_sw.data, m)
                t:add(hf_sw.data_len, m, mlen)
            else
                t:add(hf_sw.data_len, 0):set_generated()
            end
            info = info .. " " .. mlen .. " bytes"
        else
            t:add(hf_sw.text, m, m:raw())
            info = info .. " " .. m:raw()
            if ty == "E" then
                t:add_tvb_expert_info(ef_sw.error, m, m:raw())
            end
        end
    end
    t:append_text(": " .. info)
    pinfo.cols.info:set(info)
    return len
end

local function stopwait_heuristic(tvb, pinfo, tree)
    local len = tvb:len()
    if len < SW_HEADER or len > SW_HEADER + SW_MAX_MESSAGE then
        return false
    end
    if string.find(tvb:raw(0, SW_HEADER), "^[GPADFE][01F]%d%d%d%d%d$") == nil then
        return false
    end
    stopwait.dissector(tvb, pinfo, tree)
    return true
end

---------------------------------------------------------------------------
-- window: TCP segments in UDP datagrams
---------------------------------------------------------------------------

local window = Proto("mioperf_window", "mioperf window (TCP segment carried in UDP)")
local TCP_HEADER = 20

window.prefs.datagram = Pref.uint("Largest window datagram", 1472,
    "The carrier's datagram size (window::DEFAULT_DATAGRAM); a larger captured "
        .. "payload is a loopback GSO train, split at this size")

local hf_win = {
    inner_src_port = ProtoField.uint16("mioperf_window.inner_src_port", "Source port inside the segment (ignored by the carrier)", base.DEC),
    inner_dst_port = ProtoField.uint16("mioperf_window.inner_dst_port", "Destination port inside the segment (ignored by the carrier)", base.DEC),
    seq = ProtoField.uint32("mioperf_window.seq", "Sequence number (raw)", base.DEC),
    ack = ProtoField.uint32("mioperf_window.ack", "Acknowledgment number (raw)", base.DEC),
    hdr_len = ProtoField.uint8("mioperf_window.hdr_len", "Header length", base.DEC),
    flags = ProtoField.uint8("mioperf_window.flags", "Flags", base.HEX),
    win = ProtoField.uint16("mioperf_window.window", "Window (unscaled)", base.DEC),
    data_len = ProtoField.uint32("mioperf_window.data_len", "Data length", base.DEC),
    segments = ProtoField.uint32("mioperf_window.segments", "Segments in this captured datagram (GSO train)", base.DEC),
}
window.fields = hf_win

local ef_win = {
    short = ProtoExpert.new("mioperf_window.short", "Datagram shorter than a TCP header",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_offset = ProtoExpert.new("mioperf_window.bad_offset", "TCP data offset below 5 or past the datagram",
        expert.group.MALFORMED, expert.severity.ERROR),
}
window.experts = { ef_win.short, ef_win.bad_offset }

local tcp_dissector = Dissector.get("tcp")

-- Whether a captured payload is a GSO train of `size`-byte datagrams:
-- every piece has a sane TCP header and the sequence numbers follow on.
local function window_is_train(tvb, size)
    local len = tvb:len()
    if len <= size then
        return false
    end
    local off = 0
    local next_seq = nil
    while off < len do
        local n = math.min(size, len - off)
        if n < TCP_HEADER then
            return false
        end
        local hl = math.floor(tvb:range(off + 12, 1):uint() / 16) * 4
        if hl < TCP_HEADER or hl > n then
            return false
        end
        local seq = tvb:range(off + 4, 4):uint()
        if next_seq ~= nil and seq ~= next_seq then
            return false
        end
        next_seq = (seq + n - hl) % 4294967296
        off = off + n
    end
    return true
end

local function dissect_window_segment(seg, pinfo, tree)
    local len = seg:len()
    local t = tree:add(window, seg())
    if len < TCP_HEADER then
        t:add_tvb_expert_info(ef_win.short, seg, "datagram of " .. len .. " bytes")
        pinfo.cols.info:append("short window datagram ")
        return
    end
    local hl = math.floor(seg:range(12, 1):uint() / 16) * 4
    t:add(hf_win.inner_src_port, seg:range(0, 2))
    t:add(hf_win.inner_dst_port, seg:range(2, 2))
    t:add(hf_win.seq, seg:range(4, 4))
    t:add(hf_win.ack, seg:range(8, 4))
    t:add(hf_win.hdr_len, seg:range(12, 1), hl)
    t:add(hf_win.flags, seg:range(13, 1))
    t:add(hf_win.win, seg:range(14, 2))
    if hl < TCP_HEADER or hl > len then
        t:add_tvb_expert_info(ef_win.bad_offset, seg:range(12, 1), "header length " .. hl .. " in " .. len .. " bytes")
        pinfo.cols.info:append("bad TCP header ")
        return
    end
    t:add(hf_win.data_len, len - hl):set_generated()
    -- The carrier ignores the ports inside the segment (the server writes
    -- 0 as its own): put the datagram's ports there so that Wireshark's TCP
    -- sees one conversation both ways and finds tcpfile on tcp.port.
    local bytes = seg():bytes()
    bytes:set_index(0, math.floor(pinfo.src_port / 256))
    bytes:set_index(1, pinfo.src_port % 256)
    bytes:set_index(2, math.floor(pinfo.dst_port / 256))
    bytes:set_index(3, pinfo.dst_port % 256)
    local inner = bytes:tvb("TCP segment (ports from the UDP header)")
    if tcp_dissector then
        tcp_dissector:call(inner, pinfo, tree)
    end
end

function window.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    pinfo.cols.protocol = "mioperf window"
    local size = window.prefs.datagram
    if window_is_train(tvb, size) then
        -- Each segment's dissectors rewrite the Info column: keep them all.
        local n = 0
        local infos = {}
        split_train(tvb, size, function(range)
            n = n + 1
            dissect_window_segment(range:tvb(), pinfo, tree)
            infos[n] = tostring(pinfo.cols.info)
        end)
        tree:add(hf_win.segments, tvb(), n)
        pinfo.cols.info:set(n .. " segments: " .. table.concat(infos, " | "))
    else
        dissect_window_segment(tvb, pinfo, tree)
    end
    return len
end

---------------------------------------------------------------------------
-- Registration
---------------------------------------------------------------------------

local udp_port = DissectorTable.get("udp.port")
local tcp_port = DissectorTable.get("tcp.port")

udp_port:add(DEFAULT_PORTS.hello, hello)
tcp_port:add(DEFAULT_PORTS.hello, hello)
udp_port:add(DEFAULT_PORTS.lab, lab)
tcp_port:add(DEFAULT_PORTS.lab, lab)
tcp_port:add(DEFAULT_PORTS.msg, msg)
for _, port in ipairs(TCPFILE_TCP_PORTS) do
    tcp_port:add(port, tcpfile)
end
udp_port:add(DEFAULT_PORTS.stopwait, stopwait)
udp_port:add(DEFAULT_PORTS.window, window)

-- Decode As on any port (tshark -d udp.port==N,mioperf_stopwait).
for _, p in ipairs({ hello, lab, stopwait, window }) do
    udp_port:add_for_decode_as(p)
end
for _, p in ipairs({ hello, lab, msg, tcpfile }) do
    tcp_port:add_for_decode_as(p)
end

-- Heuristics for the two protocols whose every message has a shape that
-- random traffic does not: a hello request, a stopwait header.
hello:register_heuristic("udp", hello_heuristic)
hello:register_heuristic("tcp", hello_heuristic)
stopwait:register_heuristic("udp", stopwait_heuristic)

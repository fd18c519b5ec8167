-- mix.lua: the click mix for loadtest/edge.sh (wrk 4.x, LuaJIT).
--
-- Every request is `GET /r/<code>` with:
--   X-Forwarded-For  one of POOL_N distinct IPv4 client addresses, generated deterministically
--                    from the seed: 98% from ISP-heavy /8 blocks ("public-looking"), 2% from
--                    AWS ranges (3.80.0.0/12 and 52.0.0.0/11, GeoLite2 ASN 16509/14618) so that
--                    about 2% of requests come from a datacenter;
--   User-Agent       about 5% real crawler user agents (the bots file), otherwise a real browser
--                    user agent (the browsers file, one per line);
--   code             lt00..lt19 with a Zipf (s = 1) mix: lt00 about 28%, lt19 about 1.4%;
--   Cookie           `cg_vid=<22 chars>` for half of the client addresses (a returning visitor),
--                    none for the other half;
--   about 5% of requests are exact repeats of an earlier (ip, user agent, code, cookie), to
--   exercise the duplicate-click check.
--
-- Arguments (after `--` on the wrk command line): POOL_SEED REQ_SEED BROWSERS_FILE BOTS_FILE.
-- POOL_SEED fixes the client pool (addresses and cookies), so every round and both servers see
-- the same 100k clients; REQ_SEED drives the per-request draws and differs per round, so a round
-- does not replay the previous one (which clickgate's dedup would then flag as duplicates).
-- The same script is used, unchanged, against nginx and clickgate. It defines no response()
-- callback (that would slow wrk down); non-3xx answers show up in wrk's own error counters.
-- done() prints machine-readable lines (`mix:`, `codes:`, `summary:`) that edge.sh reads.

local POOL_N   = 100000   -- distinct client addresses
local DC_N     = 2000     -- of which in datacenter (AWS) ranges: 2%
local BOT_P    = 0.05     -- share of fresh requests with a crawler user agent
local DUP_P    = 0.05     -- share of requests that repeat an earlier one exactly
local RING_N   = 4096     -- how many recent requests a repeat can be drawn from
local CODES_N  = 20
local ZIPF_S   = 1.0
local LUT_N    = 8192     -- lookup table for the Zipf draw

-- First octets of blocks that are mostly eyeball ISPs (RIPE, ARIN cable/DSL, APNIC, LACNIC).
-- Reserved, multicast, CGNAT (100.64/10), TEST-NET (203.0.113/24) and the big cloud /8s
-- (3, 13, 20, 34, 35, 40, 52, 54, ...) are absent, and so is every /8 where more than 1.5% of
-- 1,000 random addresses fell in one of config/loadtest.toml's datacenter ASNs (GeoLite2 ASN,
-- checked with `clickgate check`): about 0.4% of these addresses are still hosting networks,
-- so clickgate flags about 2.4% of requests as datacenter_asn.
local PUBLIC_OCTETS = {
  24, 31, 49, 58, 59, 60, 61, 62, 67, 73, 79, 80, 81, 82, 86, 87, 90, 94, 96, 97, 101, 106,
  109, 110, 111, 112, 113, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 171, 175,
  177, 179, 180, 181, 183, 186, 187, 189, 190, 200, 201, 210, 211, 217, 218, 219, 220, 221,
  222,
}
-- AWS ranges: {first octet, second octet low, second octet count}.
local DC_RANGES = { {3, 80, 16}, {52, 0, 32} }

-- The visitor-id alphabet of clickgate (URL-safe base64 in ASCII order). 22 characters carry
-- 128 bits, so the last one only takes characters whose low 4 bits are zero.
local ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
local LAST_CHARS = "-FVk"

-- A 32-bit LCG in doubles (exact: 1664525 * 2^32 < 2^53), so the pool depends on the seed only.
local lcg_state = 1
local function lcg()
  lcg_state = (1664525 * lcg_state + 1013904223) % 4294967296
  return lcg_state
end
local function lcg_below(n)            -- 0 .. n-1, from the high bits
  return math.floor(lcg() / 4294967296 * n)
end

local function read_lines(path, what)
  local f = io.open(path, "r")
  if not f then error("mix.lua: cannot open " .. what .. " file " .. tostring(path)) end
  local out = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    -- Header-safe printable ASCII only.
    if #line > 0 and not line:find("[^\32-\126]") then out[#out + 1] = line end
  end
  f:close()
  if #out == 0 then error("mix.lua: no usable lines in " .. what .. " file " .. path) end
  return out
end

-- Per-thread state, built in init().
local pool_ip, pool_ck, pool_dc = {}, {}, {}
local browsers, bots = {}, {}
local paths, code_lut = {}, {}
local ring_ip, ring_ua, ring_code, ring_ck, ring_dc, ring_bot = {}, {}, {}, {}, {}, {}
local ring_len, ring_pos = 0, 0
local hdr = {}
local random = math.random

-- Counters (read by done() through thread:get).
n_req, n_dup, n_bot, n_dc, n_cookie = 0, 0, 0, 0, 0
code_counts = {}

local function build_pool(seed)
  lcg_state = seed % 4294967296
  local seen, count = {}, 0
  local function add(ip, dc)
    if seen[ip] then return end
    seen[ip] = true
    count = count + 1
    pool_ip[count] = ip
    pool_dc[count] = dc
  end
  -- Public-looking addresses: avoid .0 and .255 in the last octet.
  while count < POOL_N - DC_N do
    local a = PUBLIC_OCTETS[lcg_below(#PUBLIC_OCTETS) + 1]
    add(string.format("%d.%d.%d.%d", a, lcg_below(256), lcg_below(256), 1 + lcg_below(254)), false)
  end
  while count < POOL_N do
    local r = DC_RANGES[lcg_below(#DC_RANGES) + 1]
    add(string.format("%d.%d.%d.%d", r[1], r[2] + lcg_below(r[3]), lcg_below(256), 1 + lcg_below(254)), true)
  end
  -- Shuffle (Fisher-Yates) so datacenter addresses are spread over the pool.
  for i = POOL_N, 2, -1 do
    local j = lcg_below(i) + 1
    pool_ip[i], pool_ip[j] = pool_ip[j], pool_ip[i]
    pool_dc[i], pool_dc[j] = pool_dc[j], pool_dc[i]
  end
  -- A visitor cookie for every other address.
  for i = 1, POOL_N do
    if i % 2 == 0 then
      local c = {}
      for k = 1, 21 do
        local x = lcg_below(64) + 1
        c[k] = ALPHABET:sub(x, x)
      end
      local x = lcg_below(4) + 1
      c[22] = LAST_CHARS:sub(x, x)
      pool_ck[i] = "cg_vid=" .. table.concat(c)
    else
      pool_ck[i] = false
    end
  end
end

local function build_codes()
  local w, total = {}, 0
  for k = 1, CODES_N do
    w[k] = 1 / (k ^ ZIPF_S)
    total = total + w[k]
    paths[k] = string.format("/r/lt%02d", k - 1)
    code_counts[k] = 0
  end
  local acc, k = 0, 1
  for slot = 1, LUT_N do
    local u = (slot - 0.5) / LUT_N
    while k < CODES_N and u > (acc + w[k]) / total do
      acc = acc + w[k]
      k = k + 1
    end
    code_lut[slot] = k
  end
end

function init(args)
  local pool_seed = tonumber(args[1] or "")
  local req_seed = tonumber(args[2] or "")
  local browsers_file = args[3]
  local bots_file = args[4]
  if not (pool_seed and req_seed and browsers_file and bots_file) then
    error("mix.lua: usage: wrk ... -s mix.lua URL -- POOL_SEED REQ_SEED BROWSERS_FILE BOTS_FILE")
  end
  build_pool(pool_seed)
  build_codes()
  browsers = read_lines(browsers_file, "browser user-agent")
  bots = read_lines(bots_file, "bot user-agent")
  -- Per-request draws: seeded per thread (wrk's `id` is set in setup()).
  math.randomseed(req_seed * 7919 + (tonumber(id) or 1))
  random = math.random
end

function setup(thread)
  threads = threads or {}
  threads[#threads + 1] = thread
  thread:set("id", #threads)
end

function request()
  n_req = n_req + 1
  local ip, ua, code, ck, dc, bot
  if ring_len > 0 and random() < DUP_P then
    local k = random(1, ring_len)
    ip, ua, code, ck, dc, bot = ring_ip[k], ring_ua[k], ring_code[k], ring_ck[k], ring_dc[k], ring_bot[k]
    n_dup = n_dup + 1
  else
    local i = random(1, POOL_N)
    ip, ck, dc = pool_ip[i], pool_ck[i], pool_dc[i]
    bot = random() < BOT_P
    if bot then
      ua = bots[random(1, #bots)]
    else
      ua = browsers[random(1, #browsers)]
    end
    code = code_lut[random(1, LUT_N)]
    ring_pos = ring_pos % RING_N + 1
    if ring_len < RING_N then ring_len = ring_len + 1 end
    ring_ip[ring_pos], ring_ua[ring_pos], ring_code[ring_pos] = ip, ua, code
    ring_ck[ring_pos], ring_dc[ring_pos], ring_bot[ring_pos] = ck, dc, bot
  end
  if dc then n_dc = n_dc + 1 end
  if bot then n_bot = n_bot + 1 end
  code_counts[code] = code_counts[code] + 1
  hdr["X-Forwarded-For"] = ip
  hdr["User-Agent"] = ua
  if ck then
    hdr["Cookie"] = ck
    n_cookie = n_cookie + 1
  else
    hdr["Cookie"] = nil
  end
  return wrk.format("GET", paths[code], hdr)
end

function done(summary, latency, requests)
  local t = { n_req = 0, n_dup = 0, n_bot = 0, n_dc = 0, n_cookie = 0 }
  local codes = {}
  for k = 1, CODES_N do codes[k] = 0 end
  for _, th in ipairs(threads or {}) do
    for name, _ in pairs(t) do t[name] = t[name] + (th:get(name) or 0) end
    local cc = th:get("code_counts") or {}
    for k = 1, CODES_N do codes[k] = codes[k] + (cc[k] or 0) end
  end
  io.write(string.format("mix: generated=%d dup=%d bot=%d dc=%d cookie=%d\n",
    t.n_req, t.n_dup, t.n_bot, t.n_dc, t.n_cookie))
  local parts = {}
  for k = 1, CODES_N do parts[k] = string.format("lt%02d=%d", k - 1, codes[k]) end
  io.write("codes: " .. table.concat(parts, " ") .. "\n")
  local e = summary.errors
  io.write(string.format(
    "summary: requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end

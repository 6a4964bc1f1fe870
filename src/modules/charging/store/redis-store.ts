import type { Redis } from "ioredis";
import {
  type AccountState,
  type ChargingStore,
  type Crossing,
  checkMicro,
  type LineState,
  type StepRequest,
  type StepResult,
} from "./charging-store.js";

/**
 * The Redis charging store. Every key of an account carries the hash tag `{acct:<id>}`, so one script changes
 * a line and its account atomically and stays in one slot on Redis Cluster; every key a script touches is
 * passed in KEYS. Amounts travel as decimal-integer strings and are held as Lua numbers (exact below 2^53,
 * checked before sending); cjson prints numbers with 14 digits, so scripts answer amounts as strings.
 *
 * Keys: `s` (version, fence), `spend` (period → micro-units), `d` (usage id → stored result), `x` (crossed
 * threshold keys), `lines` (product ids), `l:<product>` (balance, g:<bucket> granted, u:<bucket> used).
 */

const COMMON = `
local function fmt(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local function loadline(key)
  local h = redis.call('HGETALL', key)
  if #h == 0 then return false end
  local l = { balance = false, g = {}, u = {}, dirty = false }
  for j = 1, #h, 2 do
    local f, v = h[j], h[j + 1]
    if f == 'balance' then l.balance = tonumber(v)
    elseif string.sub(f, 1, 2) == 'g:' then l.g[string.sub(f, 3)] = tonumber(v)
    elseif string.sub(f, 1, 2) == 'u:' then l.u[string.sub(f, 3)] = tonumber(v) end
  end
  return l
end
`;

/** KEYS: s, spend, d, x, then one line hash per product (ARGV's line indexes point into them, from 1). */
const STEP = `${COMMON}
local p = cjson.decode(ARGV[1])
-- Results travel as their own arguments: never decoded, never encoded again, only stored.
for i, e in ipairs(p.events) do e.r = ARGV[1 + i] end
local fence = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if p.fence < fence then return cjson.encode({ status = 'fenced', fence = fence }) end
local fresh, seen = {}, {}
for _, e in ipairs(p.events) do
  if not seen[e.u] then
    if redis.call('HEXISTS', KEYS[3], e.u) == 0 then table.insert(fresh, e)
    elseif p.strict and not e.k then return cjson.encode({ status = 'version_mismatch', version = version }) end
  end
  seen[e.u] = true
end
if #fresh > 0 and p.version ~= version then return cjson.encode({ status = 'version_mismatch', version = version }) end

local lines, spend = {}, {}
local function line(i)
  if lines[i] == nil then lines[i] = loadline(KEYS[4 + i]) end
  return lines[i]
end
local function spent(period)
  if spend[period] == nil then spend[period] = tonumber(redis.call('HGET', KEYS[2], period) or '0') end
  return spend[period]
end

-- Check everything first: a refused step changes nothing.
local planned = {}
for _, e in ipairs(fresh) do
  local l = line(e.p)
  if not l then return cjson.encode({ status = 'refused', reason = e.u .. ': the line has no state' }) end
  local charge = tonumber(e.c)
  if charge < 0 then return cjson.encode({ status = 'refused', reason = e.u .. ': negative charge' }) end
  if e.pp and not l.balance then return cjson.encode({ status = 'refused', reason = e.u .. ': the line has no prepaid balance' }) end
  for _, dr in ipairs(e.dr) do
    local h = dr[3] or e.p
    local hl = line(h)
    if not hl then return cjson.encode({ status = 'refused', reason = e.u .. ': the bucket holder has no state' }) end
    local key = h .. ':' .. dr[1]
    local granted = hl.g[dr[1]]
    local used = (planned[key] or hl.u[dr[1]] or 0) + dr[2]
    if granted == nil or dr[2] < 0 or used > granted then
      return cjson.encode({ status = 'refused', reason = e.u .. ': bucket ' .. dr[1] .. ' cannot cover ' .. dr[2] })
    end
    planned[key] = used
  end
end

local function metric(t)
  if t.m == 'spend' then return spent(t.per) end
  local l = line(t.p)
  if not l then return nil end
  if t.m == 'balance' then if l.balance then return l.balance end return nil end
  return l.u[t.b]
end

local outcomes, results, newly = {}, {}, {}
for _, e in ipairs(fresh) do
  local watched, before, crossings = {}, {}, {}
  for _, t in ipairs(p.thresholds) do
    local w = false
    if t.m == 'spend' then w = t.per == e.per
    elseif t.m == 'balance' then w = t.p == e.p
    else for _, dr in ipairs(e.dr) do if dr[1] == t.b then w = true end end end
    if w then
      table.insert(watched, t)
      table.insert(before, metric(t) or false)
    end
  end
  local l = line(e.p)
  for _, dr in ipairs(e.dr) do
    local hl = line(dr[3] or e.p)
    hl.u[dr[1]] = (hl.u[dr[1]] or 0) + dr[2]
    hl.dirty = true
  end
  local charge = tonumber(e.c)
  if e.pp then l.balance = l.balance - charge end
  l.dirty = true
  spend[e.per] = spent(e.per) + charge
  for i, t in ipairs(watched) do
    local was, now, value = before[i], metric(t), tonumber(t.v)
    if was and now then
      local hit
      if t.d == 'up' then hit = was < value and now >= value else hit = was >= value and now < value end
      if hit and not newly[t.k] and redis.call('SISMEMBER', KEYS[4], t.k) == 0 then
        newly[t.k] = true
        table.insert(crossings, { k = t.k, u = e.u, v = fmt(now) })
      end
    end
  end
  -- The mark: the crossings as JSON, a newline, then the result as the worker sent it.
  local x = '[]'
  if #crossings > 0 then x = cjson.encode(crossings) end
  results[e.u] = { x = crossings, mark = x .. '\\n' .. e.r }
  for _, c in ipairs(crossings) do redis.call('SADD', KEYS[4], c.k) end
end

for i, l in pairs(lines) do
  if l and l.dirty then
    local fields = {}
    if l.balance then table.insert(fields, 'balance'); table.insert(fields, fmt(l.balance)) end
    for b, used in pairs(l.u) do table.insert(fields, 'u:' .. b); table.insert(fields, fmt(used)) end
    if #fields > 0 then redis.call('HSET', KEYS[4 + i], unpack(fields)) end
  end
end
for period, value in pairs(spend) do redis.call('HSET', KEYS[2], period, fmt(value)) end
for _, e in ipairs(fresh) do redis.call('HSET', KEYS[3], e.u, results[e.u].mark) end
if #fresh > 0 then version = redis.call('HINCRBY', KEYS[1], 'version', 1) end
if p.fence > fence then redis.call('HSET', KEYS[1], 'fence', p.fence) end

local answered = {}
for _, e in ipairs(p.events) do
  local own = results[e.u]
  local first = own ~= nil and not answered[e.u]
  answered[e.u] = true
  -- A fresh event's result is the one the worker sent; a repeat answers the stored mark.
  if first then table.insert(outcomes, { u = e.u, dup = false, x = own.x })
  else table.insert(outcomes, { u = e.u, dup = true, m = redis.call('HGET', KEYS[3], e.u) }) end
end
return cjson.encode({ status = 'applied', version = version, outcomes = outcomes })
`;

/** KEYS: s, d, the holder's hash. ARGV: mark, from bucket, to bucket, cap. Answers the units moved. */
const ROLLOVER = `
local done = redis.call('HGET', KEYS[2], ARGV[1])
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if done then return { 'duplicate', version, done } end
local granted = redis.call('HGET', KEYS[3], 'g:' .. ARGV[2])
if not granted then return { 'refused', version, 'bucket ' .. ARGV[2] .. ' has no state' } end
local left = tonumber(granted) - tonumber(redis.call('HGET', KEYS[3], 'u:' .. ARGV[2]) or '0')
local units = math.max(0, math.min(tonumber(ARGV[4]), left))
if units > 0 then
  redis.call('HSET', KEYS[3], 'g:' .. ARGV[2], string.format('%.0f', tonumber(granted) - units),
    'g:' .. ARGV[3], string.format('%.0f', units), 'u:' .. ARGV[3], '0')
end
redis.call('HSET', KEYS[2], ARGV[1], string.format('%.0f', units))
version = redis.call('HINCRBY', KEYS[1], 'version', 1)
return { 'applied', version, string.format('%.0f', units) }
`;

/** KEYS: s, lines, the line hash. ARGV: product id, balance ('' for none), then bucket id and grant pairs. */
const GRANT = `
local changed = false
if redis.call('EXISTS', KEYS[3]) == 0 then
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[3], 'balance', ARGV[2]) end
  redis.call('HSET', KEYS[3], 'created', '1')
  redis.call('SADD', KEYS[2], ARGV[1])
  changed = true
end
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], 'g:' .. ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[3], 'u:' .. ARGV[i], '0')
    changed = true
  end
end
if changed then return redis.call('HINCRBY', KEYS[1], 'version', 1) end
return tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
`;

/**
 * KEYS: s, spend, d, x, the line hash. ARGV[1]: JSON {id, balance?, per?, spend?, bucket?, units?, rearm: [[key,
 * value]]} with amounts as strings.
 */
const ADJUST = `${COMMON}
local a = cjson.decode(ARGV[1])
local mark = 'adjust:' .. a.id
local l = loadline(KEYS[5])
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local function answer(status)
  local out = { status = status, version = version }
  if l and l.balance then out.balance = fmt(l.balance) end
  if a.per then out.spend = fmt(tonumber(redis.call('HGET', KEYS[2], a.per) or '0')) end
  if a.bucket and l and l.g[a.bucket] then out.granted = l.g[a.bucket]; out.used = l.u[a.bucket] or 0 end
  return cjson.encode(out)
end
if not l then return cjson.encode({ status = 'refused', reason = 'the line has no state' }) end
if redis.call('HEXISTS', KEYS[3], mark) == 1 then return answer('duplicate') end
local balance = l.balance
if a.balance then
  if not balance then return cjson.encode({ status = 'refused', reason = 'the line has no prepaid balance' }) end
  local delta = tonumber(a.balance)
  balance = balance + delta
  if delta < 0 and balance < 0 then return cjson.encode({ status = 'refused', reason = 'the debit would take the balance below zero' }) end
end
local spend
if a.per then
  spend = tonumber(redis.call('HGET', KEYS[2], a.per) or '0') + tonumber(a.spend)
  if spend < 0 then return cjson.encode({ status = 'refused', reason = 'the credit is larger than the spend to date of the period' }) end
end
local granted
if a.bucket then
  if not l.g[a.bucket] then return cjson.encode({ status = 'refused', reason = 'bucket ' .. a.bucket .. ' has no state' }) end
  granted = l.g[a.bucket] + a.units
  local used = l.u[a.bucket] or 0
  if granted < used or granted < 0 then
    return cjson.encode({ status = 'refused', reason = 'the bucket would grant ' .. fmt(granted) .. ', less than the ' .. fmt(used) .. ' used' })
  end
end
if a.balance then
  l.balance = balance
  redis.call('HSET', KEYS[5], 'balance', fmt(balance))
  for _, pair in ipairs(a.rearm) do
    if balance >= tonumber(pair[2]) then redis.call('SREM', KEYS[4], pair[1]) end
  end
end
if a.per then
  redis.call('HSET', KEYS[2], a.per, fmt(spend))
  for _, pair in ipairs(a.rearmSpend or {}) do
    if spend < tonumber(pair[2]) then redis.call('SREM', KEYS[4], pair[1]) end
  end
end
if a.bucket then
  l.g[a.bucket] = granted
  redis.call('HSET', KEYS[5], 'g:' .. a.bucket, fmt(granted))
end
redis.call('HSET', KEYS[3], mark, '1')
version = redis.call('HINCRBY', KEYS[1], 'version', 1)
return answer('applied')
`;

/**
 * KEYS: s, spend, d, x, lines, then every old and new line hash. ARGV[1]: JSON {version, fence, spend: [[period,
 * micro]], lines: [{p, balance?, b: [[id, granted, used]]}], crossed: [keys], marks: [[id, mark]]}.
 */
const REPLACE = `
local a = cjson.decode(ARGV[1])
for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('HSET', KEYS[1], 'version', a.version, 'fence', a.fence)
for _, pair in ipairs(a.spend) do redis.call('HSET', KEYS[2], pair[1], pair[2]) end
for _, mark in ipairs(a.marks) do redis.call('HSET', KEYS[3], mark[1], mark[2]) end
for _, key in ipairs(a.crossed) do redis.call('SADD', KEYS[4], key) end
for _, line in ipairs(a.lines) do
  local key = KEYS[5 + line.k]
  redis.call('SADD', KEYS[5], line.p)
  redis.call('HSET', key, 'created', '1')
  if line.balance then redis.call('HSET', key, 'balance', line.balance) end
  for _, b in ipairs(line.b) do redis.call('HSET', key, 'g:' .. b[1], b[2], 'u:' .. b[1], b[3]) end
end
return 1
`;

type Scripted = Redis & {
  bssChargeReplace(...args: Array<string | number>): Promise<number>;
  bssChargeStep(...args: Array<string | number>): Promise<string>;
  bssChargeGrant(...args: Array<string | number>): Promise<number>;
  bssChargeAdjust(...args: Array<string | number>): Promise<string>;
  bssChargeRollover(...args: Array<string | number>): Promise<[string, number, string]>;
};

const list = <T>(value: unknown): T[] => (Array.isArray(value) ? (value as T[]) : []);

/**
 * A dedupe mark: the event's crossings as JSON (`[{k, u, v}]`), a newline, then its result as the worker sent it
 * (JSON, so it holds no raw newline). The step builds it by concatenation, never re-encoding the result.
 */
function encodeMark(result: string, crossings: Crossing[]): string {
  const x = crossings.map((crossing) => ({ k: crossing.key, u: crossing.usageId, v: crossing.value.toString() }));
  return `${JSON.stringify(x)}\n${result}`;
}

function crossingsOf(value: unknown): Crossing[] {
  return list<{ k: string; u: string; v: string }>(value).map((crossing) => ({
    key: crossing.k,
    usageId: crossing.u,
    value: BigInt(crossing.v),
  }));
}

function decodeMark(mark: string): { result: string; crossings: Crossing[] } {
  const split = mark.indexOf("\n");
  if (split === -1) {
    // A mark written before this format: `{"r": result, "x": crossings}`.
    const old = JSON.parse(mark) as { r: string; x: unknown };
    return { result: old.r, crossings: crossingsOf(old.x) };
  }
  return { crossings: crossingsOf(JSON.parse(mark.slice(0, split))), result: mark.slice(split + 1) };
}

/** A line's state from its hash (balance, g:<bucket> granted, u:<bucket> used). */
function lineState(productId: string, hash: Record<string, string>): LineState {
  const buckets = Object.keys(hash)
    .filter((field) => field.startsWith("g:"))
    .map((field) => {
      const id = field.slice(2);
      return { id, granted: Number(hash[field]), used: Number(hash[`u:${id}`] ?? 0) };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
  return { productId, balance: hash.balance === undefined ? null : BigInt(hash.balance), buckets };
}

function accountState(
  accountId: string,
  state: Record<string, string>,
  spend: Record<string, string>,
  lines: Map<string, LineState>,
  crossedKeys: string[],
): AccountState {
  return {
    accountId,
    version: Number(state.version ?? 0),
    fence: Number(state.fence ?? 0),
    spend: new Map(Object.entries(spend).map(([period, value]) => [period, BigInt(value)])),
    lines,
    crossed: new Set(crossedKeys),
  };
}

/** Keys of one account; ioredis adds the engine's prefix to KEYS. */
function keysOf(accountId: string) {
  const tag = `{acct:${accountId}}`;
  return {
    state: `${tag}:s`,
    spend: `${tag}:spend`,
    dedupe: `${tag}:d`,
    crossed: `${tag}:x`,
    lines: `${tag}:lines`,
    line: (productId: string) => `${tag}:l:${productId}`,
  };
}

export function redisChargingStore(client: Redis): ChargingStore {
  const redis = client as Scripted;
  redis.defineCommand("bssChargeStep", { lua: STEP });
  redis.defineCommand("bssChargeGrant", { lua: GRANT, numberOfKeys: 3 });
  redis.defineCommand("bssChargeAdjust", { lua: ADJUST, numberOfKeys: 5 });
  redis.defineCommand("bssChargeReplace", { lua: REPLACE });
  redis.defineCommand("bssChargeRollover", { lua: ROLLOVER, numberOfKeys: 3 });

  /** A consistent snapshot: the reads are repeated until the version did not move while they ran. */
  const read = async (accountId: string): Promise<AccountState> => {
    const keys = keysOf(accountId);
    for (let attempt = 0; ; attempt++) {
      const first = await redis
        .multi()
        .hgetall(keys.state)
        .hgetall(keys.spend)
        .smembers(keys.lines)
        .smembers(keys.crossed)
        .exec();
      const [state, spend, lineIds, crossedKeys] = (first ?? []).map(([, value]) => value) as [
        Record<string, string>,
        Record<string, string>,
        string[],
        string[],
      ];
      const pipeline = redis.multi();
      for (const productId of lineIds) pipeline.hgetall(keys.line(productId));
      pipeline.hget(keys.state, "version");
      const second = ((await pipeline.exec()) ?? []).map(([, value]) => value);
      const version = Number(state.version ?? 0);
      if (Number(second[second.length - 1] ?? 0) !== version && attempt < 5) continue;
      const lines = new Map<string, LineState>();
      lineIds.forEach((productId, index) => {
        lines.set(productId, lineState(productId, second[index] as Record<string, string>));
      });
      return accountState(accountId, state, spend, lines, crossedKeys);
    }
  };

  return {
    kind: "redis",
    read,
    async readForRating(accountId, productIds, usageIds) {
      // One MULTI: a consistent snapshot in one round trip.
      const keys = keysOf(accountId);
      const pipeline = redis.multi().hgetall(keys.state).hgetall(keys.spend).smembers(keys.crossed);
      for (const productId of productIds) pipeline.hgetall(keys.line(productId));
      if (usageIds.length > 0) pipeline.hmget(keys.dedupe, ...usageIds);
      const values = ((await pipeline.exec()) ?? []).map(([error, value]) => {
        if (error) throw error;
        return value;
      });
      const lines = new Map<string, LineState>();
      productIds.forEach((productId, index) => {
        const hash = values[3 + index] as Record<string, string>;
        if (Object.keys(hash).length > 0) lines.set(productId, lineState(productId, hash));
      });
      const marks = usageIds.length > 0 ? (values[3 + productIds.length] as Array<string | null>) : [];
      return {
        state: accountState(
          accountId,
          values[0] as Record<string, string>,
          values[1] as Record<string, string>,
          lines,
          values[2] as string[],
        ),
        applied: new Set(usageIds.filter((_, index) => marks[index] !== null)),
      };
    },
    async grant(accountId, line) {
      if (line.balance !== null) checkMicro(line.balance, "balance");
      const keys = keysOf(accountId);
      return redis.bssChargeGrant(
        keys.state,
        keys.lines,
        keys.line(line.productId),
        line.productId,
        line.balance === null ? "" : line.balance.toString(),
        ...line.buckets.flatMap((bucket) => [bucket.id, String(bucket.granted)]),
      );
    },
    async step(request: StepRequest): Promise<StepResult> {
      const keys = keysOf(request.accountId);
      const products: string[] = [];
      const indexOf = (productId: string) => {
        let index = products.indexOf(productId);
        if (index === -1) index = products.push(productId) - 1;
        return index + 1;
      };
      const payload = {
        fence: request.fence,
        strict: request.strict === true,
        version: request.version,
        events: request.events.map((event) => {
          checkMicro(event.charge, "charge");
          return {
            u: event.usageId,
            ...(event.known ? { k: true } : {}),
            p: indexOf(event.productId),
            per: event.period,
            dr: event.draws.map((draw) =>
              draw.holder === undefined
                ? [draw.bucketId, draw.units]
                : [draw.bucketId, draw.units, indexOf(draw.holder)],
            ),
            c: event.charge.toString(),
            pp: event.prepaid,
          };
        }),
        thresholds: request.thresholds.map((threshold) => {
          checkMicro(threshold.value, "threshold");
          return {
            k: threshold.key,
            m: threshold.metric,
            d: threshold.direction,
            v: threshold.value.toString(),
            ...(threshold.period === undefined ? {} : { per: threshold.period }),
            ...(threshold.productId === undefined ? {} : { p: indexOf(threshold.productId) }),
            ...(threshold.bucketId === undefined ? {} : { b: threshold.bucketId }),
          };
        }),
      };
      const lineKeys = products.map((productId) => keys.line(productId));
      const answer = JSON.parse(
        await redis.bssChargeStep(
          4 + lineKeys.length,
          keys.state,
          keys.spend,
          keys.dedupe,
          keys.crossed,
          ...lineKeys,
          JSON.stringify(payload),
          ...request.events.map((event) => event.result),
        ),
      ) as Record<string, unknown>;
      if (answer.status === "applied") {
        const sent = new Map(request.events.map((event) => [event.usageId, event.result]));
        return {
          status: "applied",
          version: Number(answer.version),
          outcomes: list<{ u: string; dup: boolean; x?: unknown; m?: string }>(answer.outcomes).map((outcome) => {
            const stored = outcome.dup ? decodeMark(String(outcome.m)) : null;
            return {
              usageId: outcome.u,
              duplicate: outcome.dup,
              result: stored?.result ?? (sent.get(outcome.u) as string),
              crossings: stored?.crossings ?? crossingsOf(outcome.x),
            };
          }),
        };
      }
      if (answer.status === "version_mismatch") return { status: "version_mismatch", version: Number(answer.version) };
      if (answer.status === "fenced") return { status: "fenced", fence: Number(answer.fence) };
      return { status: "refused", reason: String(answer.reason) };
    },
    async adjust(adjustment) {
      const keys = keysOf(adjustment.accountId);
      if (adjustment.balance !== undefined) checkMicro(adjustment.balance, "balance change");
      if (adjustment.spend !== undefined) checkMicro(adjustment.spend.delta, "spend change");
      const payload = {
        id: adjustment.id,
        ...(adjustment.balance === undefined ? {} : { balance: adjustment.balance.toString() }),
        ...(adjustment.spend === undefined
          ? {}
          : { per: adjustment.spend.period, spend: adjustment.spend.delta.toString() }),
        ...(adjustment.bucket === undefined
          ? {}
          : { bucket: adjustment.bucket.bucketId, units: adjustment.bucket.delta }),
        rearm: adjustment.rearm.map((threshold) => [threshold.key, threshold.value.toString()]),
        rearmSpend: (adjustment.rearmSpend ?? []).map((threshold) => [threshold.key, threshold.value.toString()]),
      };
      const answer = JSON.parse(
        await redis.bssChargeAdjust(
          keys.state,
          keys.spend,
          keys.dedupe,
          keys.crossed,
          keys.line(adjustment.productId),
          JSON.stringify(payload),
        ),
      ) as {
        status: "applied" | "duplicate" | "refused";
        reason?: string;
        version: number;
        balance?: string;
        spend?: string;
        granted?: number;
        used?: number;
      };
      if (answer.status === "refused") return { status: "refused", reason: String(answer.reason) };
      return {
        status: answer.status,
        version: Number(answer.version),
        balance: answer.balance === undefined ? null : BigInt(answer.balance),
        spend: answer.spend === undefined ? null : BigInt(answer.spend),
        bucket: answer.granted === undefined ? null : { granted: Number(answer.granted), used: Number(answer.used) },
      };
    },
    async rollover(rollover) {
      const keys = keysOf(rollover.accountId);
      const [status, version, value] = await redis.bssChargeRollover(
        keys.state,
        keys.dedupe,
        keys.line(rollover.holder),
        `adjust:${rollover.id}`,
        rollover.from,
        rollover.to,
        String(rollover.cap),
      );
      if (status === "refused") return { status, reason: value };
      return { status: status as "applied" | "duplicate", version: Number(version), units: Number(value) };
    },
    async applied(accountId, usageIds) {
      if (usageIds.length === 0) return new Set();
      const marks = await redis.hmget(keysOf(accountId).dedupe, ...usageIds);
      return new Set(usageIds.filter((_, index) => marks[index] !== null));
    },
    async replace(snapshot) {
      const keys = keysOf(snapshot.accountId);
      const old = await redis.smembers(keys.lines);
      const products = [...new Set([...old, ...snapshot.lines.map((line) => line.productId)])];
      const payload = {
        version: snapshot.version,
        fence: snapshot.fence,
        spend: [...snapshot.spend].map(([period, value]) => [period, value.toString()]),
        lines: snapshot.lines.map((line) => ({
          k: products.indexOf(line.productId) + 1,
          p: line.productId,
          ...(line.balance === null ? {} : { balance: line.balance.toString() }),
          b: line.buckets.map((bucket) => [bucket.id, String(bucket.granted), String(bucket.used)]),
        })),
        crossed: snapshot.crossed,
        marks: [
          ...snapshot.marks.map((mark) => [mark.id, encodeMark(mark.result, mark.crossings)]),
          ...snapshot.adjustments.map((id) => [`adjust:${id}`, "1"]),
        ],
      };
      await redis.bssChargeReplace(
        5 + products.length,
        keys.state,
        keys.spend,
        keys.dedupe,
        keys.crossed,
        keys.lines,
        ...products.map((productId) => keys.line(productId)),
        JSON.stringify(payload),
      );
    },
    async initialized() {
      return (await redis.exists("charging:initialized")) === 1;
    },
    async markInitialized() {
      await redis.set("charging:initialized", new Date().toISOString());
    },
    async close() {},
  };
}

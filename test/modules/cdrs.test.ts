import { readFileSync } from "node:fs";
import t from "tap";
import { buildApp } from "../../src/app.js";
import type { QueueEntry } from "../../src/modules/usage/usage-queue.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { CDR_BATCH_MAX } from "../../src/shared/limits.js";
import { drivers, type Engine, everyCase, expectError, hasServers, startEngine } from "../support/engine.js";
import { lineOrder, orderReadyAccount } from "../support/fixtures.js";

/**
 * CDR ingestion end to end over HTTP: per-record outcomes, guiding to the line at the CDR's time, suspense and
 * re-guiding, exactly-once on the queue, the switch formats, TMF635 usage, and bad input record by record.
 */

const ORDERS = "/tmf-api/productOrderingManagement/v4/productOrder";
const USAGE = "/tmf-api/usageManagement/v4/usage";
const MSISDN = "+4915100000000";

interface Setup {
  engine: Engine;
  accountId: string;
  lineId: string;
  imsi: string;
}

async function activeLineEngine(t: Parameters<typeof startEngine>[0], driver: Engine["driver"]): Promise<Setup> {
  const engine = await startEngine(t, { driver });
  const { accountId, sims } = await orderReadyAccount(engine);
  const placed = await engine.request("POST", ORDERS, { body: lineOrder(accountId) });
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
  const order = (await engine.request("GET", placed.json().href)).json();
  const product = order.productOrderItem[0].product;
  const iccid = product.productCharacteristic.find((c: { name: string }) => c.name === "iccid").value as string;
  const sim = sims.find((candidate) => candidate.iccid === iccid);
  const source = await engine.request("POST", "/api/v1/cdr-sources", {
    body: { id: "msc-1", countryCode: "49", timeZone: "Europe/Berlin", description: "MSC Frankfurt" },
  });
  if (source.statusCode !== 201) throw new Error(source.body);
  return { engine, accountId, lineId: product.id as string, imsi: sim?.imsi as string };
}

function voice(cdrId: string, overrides: Record<string, unknown> = {}) {
  return {
    recordType: "voice",
    cdrId,
    source: "msc-1",
    servedMSISDN: MSISDN,
    calledNumber: "+4930123456",
    recordOpeningTime: "2026-03-15T11:05:00+01:00",
    duration: 61,
    ...overrides,
  };
}

function post(engine: Engine, body: unknown, headers: Record<string, string> = {}) {
  return engine.request("POST", "/api/v1/cdrs", {
    key: engine.keys.network,
    ...(typeof body === "string" || Buffer.isBuffer(body) ? { rawBody: body } : { body }),
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Everything on the queue, read as a worker would, and acknowledged. */
async function drain(engine: Engine): Promise<QueueEntry[]> {
  const queue = engine.app.services.charging.queue;
  const entries: QueueEntry[] = [];
  for (let shard = 0; shard < queue.shards; shard += 1) {
    const read = await queue.read(shard, "test", 10_000, 0);
    entries.push(...read);
    await queue.ack(
      shard,
      read.map((entry) => entry.id),
    );
  }
  return entries;
}

for (const driver of drivers) {
  t.test(`[${driver}] a mixed batch: each record its own outcome, only guided ones queued, once`, async (t) => {
    const { engine, accountId, lineId, imsi } = await activeLineEngine(t, driver);
    const batch = [
      voice("v-1", { servedMSISDN: "015100000000", calledNumber: "030123456" }),
      { ...voice("s-1"), recordType: "sms", duration: undefined, messages: 2 },
      {
        recordType: "data",
        cdrId: "d-1",
        source: "msc-1",
        servedIMSI: imsi,
        recordOpeningTime: "2026-03-15T10:03:00Z",
        dataVolumeUplink: 1_000,
        dataVolumeDownlink: 250_000,
        ratingGroup: 10,
        visitedNetwork: "23415",
      },
      voice("unknown-1", { servedMSISDN: "+4917000000001" }),
      voice("before-line", { recordOpeningTime: "2026-03-15T09:00:00Z" }),
      voice("bad-duration", { duration: -5 }),
      voice("fraction", { duration: 1.5 }),
      voice("future", { recordOpeningTime: "2026-03-16T10:00:00Z" }),
      voice("no-zone", { recordOpeningTime: "2026-03-15T10:05:00" }),
      voice("feb-30", { recordOpeningTime: "2026-02-30T10:05:00Z" }),
      { ...voice("bad-type"), recordType: "mms" },
      voice("inject", { servedMSISDN: "+49151' OR 1=1" }),
      voice("string-duration", { duration: "60" }),
      voice("extra", { chargeMe: true }),
      voice("nul\u0000id"),
      voice("huge", { duration: 10 ** 12 }),
      { ...voice("sms-volume"), recordType: "sms", duration: undefined, dataVolumeUplink: 5 },
      voice("unregistered", { source: "msc-9" }),
      "not an object",
      voice("v-1", { servedMSISDN: "015100000000", calledNumber: "030123456" }),
      voice("v-1", { duration: 62 }),
    ];
    const answer = await post(engine, batch);
    t.equal(answer.statusCode, 200, answer.body);
    const result = answer.json();
    t.match(result, { received: 21, accepted: 5, duplicate: 1, conflict: 1, rejected: 14 });
    const by = (index: number) => result.records[index];
    t.match(by(0), { index: 0, outcome: "accepted", cdrId: "v-1", source: "msc-1", status: "guided" });
    t.match(by(1), { outcome: "accepted", status: "guided" });
    t.match(by(2), { outcome: "accepted", status: "guided" }, "guided by IMSI");
    t.match(by(3), { outcome: "accepted", status: "recycled", reason: /no line has ever held \+4917000000001/ });
    t.match(by(4), { outcome: "accepted", status: "recycled", reason: /no line held \+4915100000000 at/ });
    const rejected = (index: number, field: string, reason: RegExp) =>
      t.match(by(index), { index, outcome: "rejected", field, reason }, `record ${index}: ${field}`);
    rejected(5, "duration", /from 0 to 86400/);
    rejected(6, "duration", /whole number/);
    rejected(7, "recordOpeningTime", /in the future/);
    rejected(8, "recordOpeningTime", /with an offset/);
    rejected(9, "recordOpeningTime", /ISO 8601/);
    rejected(10, "recordType", /voice, sms or data/);
    rejected(11, "servedMSISDN", /digits/);
    rejected(12, "duration", /not a string/);
    rejected(13, "chargeMe", /not a CDR field/);
    rejected(14, "cdrId", /NUL/);
    rejected(15, "duration", /from 0 to 86400/);
    rejected(16, "dataVolumeUplink", /data records/);
    rejected(17, "source", /not a registered/);
    rejected(18, "record", /JSON object/);
    t.match(by(19), { outcome: "duplicate", cdrId: "v-1", usageId: by(0).usageId }, "a repeat in the same batch");
    t.match(by(20), { outcome: "conflict", cdrId: "v-1", usageId: by(0).usageId, reason: /different record/ });
    t.equal(by(11).cdrId, "inject", "the element's own id is echoed for a rejected record");

    t.equal(await engine.count("usage_records"), 5, "accepted records only");
    t.equal(await engine.count("usage_keys"), 5);
    t.equal(await engine.count("usage_suspense", "resolved_at is null"), 2);
    const [stored] = await engine.sql<{ served_msisdn: string; called_number: string; billing_account_id: string }>(
      "select served_msisdn, called_number, billing_account_id::text from usage_records where cdr_id = 'v-1'",
    );
    t.same(stored, { served_msisdn: MSISDN, called_number: "+4930123456", billing_account_id: accountId });

    const queued = await drain(engine);
    t.same(queued.map((entry) => entry.usage.cdrId).sort(), ["d-1", "s-1", "v-1"], "guided records, once each");
    const data = queued.find((entry) => entry.usage.cdrId === "d-1");
    t.match(data?.usage, {
      billingAccountId: accountId,
      productId: lineId,
      recordType: "data",
      volumeUplink: 1_000,
      volumeDownlink: 250_000,
      visitedNetwork: "23415",
      ratingGroup: 10,
      startedAtMs: Date.parse("2026-03-15T10:03:00Z"),
    });
    t.equal(data?.shard, engine.app.services.charging.queue.shardOf(accountId), "on the account's shard");

    const again = await post(engine, batch);
    t.match(again.json(), { accepted: 0, duplicate: 6, conflict: 1, rejected: 14 }, "a retry accepts nothing");
    t.equal(await engine.count("usage_records"), 5);
    t.same(await drain(engine), [], "and enqueues nothing");
  });

  if (everyCase(driver))
    t.test(`[${driver}] NDJSON and JSON arrays refuse a broken record alone`, async (t) => {
      const { engine } = await activeLineEngine(t, driver);
      const good = (id: string) => Buffer.from(JSON.stringify(voice(id)));
      const ndjson = Buffer.concat([
        good("n-1"),
        Buffer.from("\n"),
        Buffer.from('{"recordType":"voice","cdrId":"n-bad-utf8","source":"msc-1","calledNumber":"\xff"}', "latin1"),
        Buffer.from("\n\n"),
        Buffer.from('{"recordType":"voice","cdrId":"n-dup","cdrId":"n-dup2"}\n'),
        Buffer.from('{"recordType": "voice", "cdrId": "n-null\\u0000"}\r\n'),
        Buffer.from("{not json}\n"),
        good("n-2"),
      ]);
      const answer = await post(engine, ndjson, { "content-type": "application/x-ndjson" });
      t.equal(answer.statusCode, 200, answer.body);
      const result = answer.json();
      t.match(result, { received: 6, accepted: 2, rejected: 4 });
      t.same(
        result.records.map((record: { line: number; outcome: string }) => [record.line, record.outcome]),
        [
          [1, "accepted"],
          [2, "rejected"],
          [4, "rejected"],
          [5, "rejected"],
          [6, "rejected"],
          [7, "accepted"],
        ],
      );
      t.match(result.records[1], { reason: /UTF-8/ });
      t.match(result.records[2], { field: "cdrId", reason: /more than once/ });
      t.match(result.records[3], { reason: /NUL/ });
      t.match(result.records[4], { reason: /not valid JSON/ });

      const array = Buffer.concat([
        Buffer.from("[ "),
        good("a-1"),
        Buffer.from(', {"cdrId": "a-bad", "note": "caf\xe9"}, ', "latin1"),
        good("a-2"),
        Buffer.from(", [1, 2], 7 ]"),
      ]);
      const arrayAnswer = await post(engine, array);
      t.match(arrayAnswer.json(), { received: 5, accepted: 2, rejected: 3 });
      t.match(arrayAnswer.json().records[1], { index: 1, outcome: "rejected", reason: /UTF-8/ });

      for (const [body, reason] of [
        ['[{"cdrId": "x"', /not closed/],
        ['{"cdrId": "x"}', /JSON array/],
        ['[{"cdrId": "unterminated}]', /not closed/],
        ["[] []", /after the JSON array/],
        ['[{"cdrId": "x"}}{"cdrId": "y"}]', /unexpected '}'/],
      ] as const) {
        const refused = await post(engine, body);
        expectError(t, refused, 400, "malformed_json");
        t.match(refused.json().message, reason);
      }
      t.equal(await engine.count("usage_records"), 4, "nothing of the refused bodies was stored");
      t.equal(await engine.count("usage_records", "cdr_id like 'n-%' or cdr_id like 'a-%'"), 4);
    });

  if (everyCase(driver))
    t.test(`[${driver}] oversized batches and bodies are refused whole`, async (t) => {
      const { engine } = await activeLineEngine(t, driver);
      const tooMany = Array.from({ length: CDR_BATCH_MAX + 1 }, (_, index) => voice(`big-${index}`));
      const refused = await post(engine, tooMany);
      expectError(t, refused, 413, "too_many_records");
      t.match(refused.json().message, /at most 1000 records/);
      const huge = await post(engine, `[${"1,".repeat(2_500_000)}1]`);
      t.equal(huge.statusCode, 413);
      const empties = await post(engine, `[${",".repeat(1_000_000)}]`);
      expectError(t, empties, 413, "too_many_records");
      const lines = await post(engine, "1\n".repeat(100_000), { "content-type": "application/x-ndjson" });
      expectError(t, lines, 413, "too_many_records");
      const wrongType = await post(engine, "recordType=voice", { "content-type": "text/plain" });
      t.equal(wrongType.statusCode, 415);
      t.equal(await engine.count("usage_records"), 0);
      const full = await post(
        engine,
        Array.from({ length: CDR_BATCH_MAX }, (_, index) => voice(`full-${index}`)),
      );
      t.match(full.json(), { accepted: CDR_BATCH_MAX });
      t.equal((await drain(engine)).length, CDR_BATCH_MAX);
    });

  if (everyCase(driver))
    t.test(`[${driver}] suspense: listed with filters, re-guided after a late activation, enqueued once`, async (t) => {
      const { engine, accountId } = await activeLineEngine(t, driver);
      const late = "+4915100000001";
      const posted = await post(engine, [
        voice("late-1", { servedMSISDN: late, recordOpeningTime: "2026-03-15T10:10:00Z" }),
        voice("late-2", { servedMSISDN: late, recordOpeningTime: "2026-03-15T10:11:00Z", duration: 5 }),
        voice("never", { servedMSISDN: "+4917000000002" }),
      ]);
      t.match(posted.json(), { accepted: 3 });
      t.same(await drain(engine), [], "nothing guided, nothing queued");

      const list = await engine.request("GET", "/api/v1/suspense", {
        query: { reason: "unknown_number", state: "open" },
      });
      t.equal(list.statusCode, 200, list.body);
      t.equal(list.headers["x-total-count"], "3");
      const filtered = await engine.request("GET", "/api/v1/suspense", { query: { servedMSISDN: late } });
      t.equal(filtered.json().length, 2);
      t.match(filtered.json()[0], {
        "@type": "SuspendedUsage",
        state: "open",
        reason: "unknown_number",
        attempts: 1,
        usage: { cdrId: "late-1", source: "msc-1", servedMSISDN: late, recordType: "voice" },
      });
      const usageId = filtered.json()[0].id as string;
      const usage = await engine.request("GET", `${USAGE}/${usageId}`);
      t.match(usage.json(), { status: "recycled", suspense: { reason: "unknown_number" }, relatedParty: [] });
      expectError(
        t,
        await engine.request("GET", "/api/v1/suspense", { query: { reason: "bogus" } }),
        400,
        "invalid_parameter",
      );

      // Re-guiding before the cause is fixed counts an attempt and changes nothing else.
      const early = await engine.request("POST", `/api/v1/suspense/${usageId}/reguide`, { key: engine.keys.crm });
      t.match(early.json(), { state: "open", attempts: 2, reason: "unknown_number" });
      t.same(await drain(engine), []);

      // The line for the late number is ordered and activated (clock still at 10:00, before the CDRs' times).
      const placed = await engine.request("POST", ORDERS, { body: lineOrder(accountId) });
      await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
      const line = (await engine.request("GET", placed.json().href)).json().productOrderItem[0].product;
      t.equal(line.productCharacteristic[0].value, late, "the second line holds the late number");

      const one = await engine.request("POST", `/api/v1/suspense/${usageId}/reguide`, { key: engine.keys.crm });
      t.match(one.json(), { state: "resolved", resolution: "reguided", attempts: 3 });
      t.match((await engine.request("GET", `${USAGE}/${usageId}`)).json(), {
        status: "guided",
        product: { id: line.id },
        relatedParty: [{ id: accountId, role: "billingAccount" }],
      });
      const again = await engine.request("POST", `/api/v1/suspense/${usageId}/reguide`, { key: engine.keys.crm });
      expectError(t, again, 409, "already_resolved");

      const bulk = await engine.request("POST", "/api/v1/suspense/reguide", {
        key: engine.keys.crm,
        body: { reason: ["unknown_number"] },
      });
      t.same(bulk.json(), { examined: 2, guided: 1, stillSuspended: 1 });
      const queued = await drain(engine);
      t.same(queued.map((entry) => entry.usage.cdrId).sort(), ["late-1", "late-2"], "each re-guided record once");
      t.equal(queued[0]?.usage.productId, line.id);
      const nothing = await engine.request("POST", "/api/v1/suspense/reguide", {
        key: engine.keys.crm,
        body: { reason: ["unknown_number"] },
      });
      t.same(nothing.json(), { examined: 1, guided: 0, stillSuspended: 1 });
      t.same(await drain(engine), []);
      t.equal(await engine.count("usage_suspense", "resolved_at is null"), 1);
      t.equal(await engine.count("audit_log", "action = 'reguide'"), 4, "every re-guide that ran is audited");

      expectError(
        t,
        await engine.request("POST", "/api/v1/suspense/reguide", { body: { limit: 0 } }),
        400,
        "invalid_field",
      );
      expectError(
        t,
        await engine.request("POST", "/api/v1/suspense/reguide", { body: { what: 1 } }),
        400,
        "invalid_field",
      );
      expectError(
        t,
        await engine.request("POST", "/api/v1/suspense/reguide", { key: engine.keys.network, body: {} }),
        403,
        "role_not_allowed",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] a line not yet active, and a line that ended`, async (t) => {
      const { engine, accountId, lineId } = await activeLineEngine(t, driver);
      engine.clock.set("2026-03-15T12:00:00Z");
      const placed = await engine.request("POST", ORDERS, { body: lineOrder(accountId) });
      t.equal(placed.statusCode, 201);
      // Disconnect the first line at 12:00: CDRs before stay its own, CDRs after find no line.
      const disconnect = await engine.request("POST", ORDERS, {
        body: {
          productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
          billingAccount: { id: accountId },
        },
      });
      t.equal(disconnect.statusCode, 201, disconnect.body);
      await engine.app.services.orders.fulfil(SYSTEM_ACTOR, disconnect.json().id);
      engine.clock.set("2026-03-15T13:00:00Z");
      const result = (
        await post(engine, [
          voice("during", { recordOpeningTime: "2026-03-15T11:30:00Z" }),
          voice("after", { recordOpeningTime: "2026-03-15T12:30:00Z" }),
        ])
      ).json();
      t.match(result.records[0], { status: "guided" }, "a late CDR from while the line lived");
      t.match(result.records[1], { status: "recycled", reason: /no line held/ });
      const queued = await drain(engine);
      t.same(
        queued.map((entry) => [entry.usage.cdrId, entry.usage.productId]),
        [["during", lineId]],
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] TMF635 usage: one CDR in, stored usage out, scoped to its account`, async (t) => {
      const { engine, accountId } = await activeLineEngine(t, driver);
      const body = {
        usageType: "sms",
        usageDate: "2026-03-15T10:10:00Z",
        "@schemaLocation": "https://example.com/usage.json",
        usageCharacteristic: [
          { name: "cdrId", value: "tmf-1" },
          { name: "source", value: "msc-1" },
          { name: "servedMSISDN", value: MSISDN },
          { name: "calledNumber", value: "+447700900123" },
        ],
      };
      const created = await engine.request("POST", USAGE, { key: engine.keys.network, body });
      t.equal(created.statusCode, 201, created.body);
      t.equal(created.headers.location, created.json().href);
      t.match(created.json(), {
        "@type": "Usage",
        usageType: "sms",
        status: "guided",
        usageDate: "2026-03-15T10:10:00.000Z",
        relatedParty: [{ id: accountId, "@referredType": "BillingAccount" }],
        usageSpecification: { id: "sms" },
      });
      t.ok(
        created
          .json()
          .usageCharacteristic.some((c: { name: string; value: unknown }) => c.name === "messages" && c.value === 1),
      );
      const retry = await engine.request("POST", USAGE, { key: engine.keys.network, body });
      t.equal(retry.statusCode, 200, "a retry answers the first usage");
      t.equal(retry.json().id, created.json().id);
      const conflict = await engine.request("POST", USAGE, {
        key: engine.keys.network,
        body: { ...body, usageDate: "2026-03-15T10:11:00Z" },
      });
      expectError(t, conflict, 409, "cdr_conflict");
      const bad = await engine.request("POST", USAGE, {
        key: engine.keys.network,
        body: { ...body, usageCharacteristic: [...body.usageCharacteristic, { name: "colour", value: "red" }] },
      });
      expectError(t, bad, 400, "invalid_field");
      t.match(bad.json().message, /colour/);
      const badValue = await engine.request("POST", USAGE, {
        key: engine.keys.network,
        body: {
          ...body,
          usageCharacteristic: [
            { name: "cdrId", value: "tmf-2" },
            { name: "source", value: "msc-1" },
          ],
        },
      });
      expectError(t, badValue, 400, "invalid_field");
      t.equal(badValue.json().field, "usageCharacteristic.servedMSISDN");
      expectError(
        t,
        await engine.request("POST", USAGE, { key: engine.keys.network, body: { usageType: 5 } }),
        400,
        "invalid_field",
      );

      // TMF635 makes every attribute optional: a usage without characteristics names no (source, cdrId) and no
      // number. It is kept as sent, in suspense, deduplicated on its body (keys in any order).
      const bare = {
        usageType: "voice",
        usageDate: "2026-03-15T11:00:00+01:00",
        description: "from a standard client",
      };
      const kept = await engine.request("POST", USAGE, { key: engine.keys.network, body: bare });
      t.equal(kept.statusCode, 201, kept.body);
      t.match(kept.json(), {
        "@type": "Usage",
        status: "recycled",
        usageType: "voice",
        usageDate: "2026-03-15T10:00:00.000Z",
        description: "from a standard client",
        suspense: { reason: "missing_characteristics" },
      });
      t.notOk(kept.json().usageSpecification, "no record type was read, so no specification is claimed");
      const again = await engine.request("POST", USAGE, {
        key: engine.keys.network,
        body: { description: bare.description, usageDate: bare.usageDate, usageType: "voice", usageCharacteristic: [] },
      });
      t.equal(again.statusCode, 200, "the same body again (an empty characteristic list is none) answers the first");
      t.equal(again.json().id, kept.json().id);
      const empty = await engine.request("POST", USAGE, { key: engine.keys.network, body: {} });
      t.equal(empty.statusCode, 201, "an empty body is a usage too (nothing in TMF635 is mandatory)");
      t.not(empty.json().id, kept.json().id);
      const suspended = await engine.request("GET", "/api/v1/suspense", {
        query: { reason: "missing_characteristics" },
      });
      t.equal(suspended.statusCode, 200, suspended.body);
      t.same(
        suspended
          .json()
          .map((item: { id: string }) => item.id)
          .sort(),
        [kept.json().id, empty.json().id].sort(),
      );
      t.match(suspended.json()[0], { state: "open", usage: { source: "#tmf635" } });
      expectError(t, await engine.request("POST", `/api/v1/suspense/${kept.json().id}/reguide`), 409, "not_guidable");
      const bulk = await engine.request("POST", "/api/v1/suspense/reguide", { body: {} });
      t.match(bulk.json(), { examined: 0 }, "a bulk re-guide passes them by");
      const [stored] = await engine.sql<{ body: unknown }>("select body from usage_records where id = $1", [
        kept.json().id,
      ]);
      t.same(stored?.body, bare, "the body is kept as sent");

      const own = await engine.subscriberKey(accountId);
      const listed = await engine.request("GET", USAGE, { key: own, query: { status: "guided" } });
      t.equal(listed.json().length, 1);
      const { accountId: otherAccount } = await orderReadyAccount(engine, {
        numbers: ["+4915100000100", "+4915100000101"],
      });
      const stranger = await engine.subscriberKey(otherAccount);
      expectError(t, await engine.request("GET", `${USAGE}/${created.json().id}`, { key: stranger }), 404, "not_found");
      t.same((await engine.request("GET", USAGE, { key: stranger })).json(), []);
      const specs = await engine.request("GET", "/tmf-api/usageManagement/v4/usageSpecification", { key: own });
      t.same(
        specs.json().map((spec: { id: string }) => spec.id),
        ["voice", "sms", "data"],
      );
      expectError(
        t,
        await engine.request("GET", "/tmf-api/usageManagement/v4/usageSpecification/mms"),
        404,
        "not_found",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] switch formats: FreeSWITCH posts and Asterisk uploads`, async (t) => {
      const { engine } = await activeLineEngine(t, driver);
      const fixture = (name: string) => readFileSync(new URL(`../fixtures/cdrs/${name}`, import.meta.url), "utf8");
      // The samples are real switch output; point them at this test's line and its time.
      const retarget = (text: string) =>
        text
          .replaceAll("+4915112345678", MSISDN)
          .replaceAll("%2B4915112345678", encodeURIComponent(MSISDN))
          .replace(
            /"(start|answer|end)_epoch": ?"[1-9]\d*"/g,
            (_m, name: string) => `"${name}_epoch": "${name === "end" ? 1773569161 : 1773569100}"`,
          )
          .replace(
            /"(start|answer|end)_uepoch": ?"[1-9]\d*"/g,
            (_m, name: string) => `"${name}_uepoch": "${name === "end" ? 1773569161000000 : 1773569100000000}"`,
          );
      const answered = JSON.parse(retarget(fixture("freeswitch-answered.json")));
      const fs = (body: string, contentType: string) =>
        engine.request("POST", "/api/v1/cdrs/freeswitch", {
          key: engine.keys.network,
          query: { source: "msc-1" },
          rawBody: body,
          headers: { "content-type": contentType },
        });
      const first = await fs(JSON.stringify(answered), "application/json");
      t.equal(first.statusCode, 200, first.body);
      t.match(first.json().records[0], { outcome: "accepted", cdrId: answered.variables.uuid });
      const form = await fs(`cdr=${encodeURIComponent(JSON.stringify(answered))}`, "application/x-www-form-urlencoded");
      t.match(form.json().records[0], { outcome: "duplicate" }, "the same call again, form-encoded");
      const base64 = await fs(
        `cdr=${Buffer.from(JSON.stringify(answered)).toString("base64")}`,
        "application/x-www-form-base64-encoded",
      );
      t.match(base64.json().records[0], { outcome: "duplicate" });
      const unanswered = JSON.parse(retarget(fixture("freeswitch-unanswered.json")));
      const missed = await fs(JSON.stringify(unanswered), "application/json");
      t.match(missed.json().records[0], { outcome: "accepted", note: /unanswered/ });
      expectError(t, await fs("{broken", "application/json"), 400, "invalid_field");
      const negative = await fs(
        JSON.stringify({ ...answered, variables: { ...answered.variables, billsec: "-1" } }),
        "application/json",
      );
      expectError(t, negative, 400, "invalid_field");
      t.equal(negative.json().field, "variables.billsec");
      const changed = await fs(
        JSON.stringify({ ...answered, variables: { ...answered.variables, billsec: "30" } }),
        "application/json",
      );
      expectError(t, changed, 409, "cdr_conflict");
      const unknownSource = await engine.request("POST", "/api/v1/cdrs/freeswitch", {
        key: engine.keys.network,
        query: { source: "nowhere" },
        rawBody: JSON.stringify(answered),
        headers: { "content-type": "application/json" },
      });
      expectError(t, unknownSource, 400, "invalid_field");
      t.equal(unknownSource.json().field, "source");

      const stored = await engine.sql<{ duration: number; chargeable: boolean }>(
        "select duration, chargeable from usage_records where format = 'freeswitch' order by chargeable desc",
      );
      t.equal(stored.length, 2);
      t.equal(stored[0]?.chargeable, true);
      t.equal(stored[0]?.duration, Number(answered.variables.billsec), "billsec is what is rated");
      t.same(stored[1], { duration: 0, chargeable: false }, "the unanswered leg is recorded, not charged");

      const row = (uniqueid: string, disposition: string, billsec: number, answer = "2026-03-15 11:04:05") =>
        `"","015100000000","004930123456","from-subscribers","""Ada"" <015100000000>","PJSIP/sub-1","PJSIP/out-${uniqueid}","Dial","PJSIP/x,60","2026-03-15 11:04:00","${answer}","2026-03-15 11:05:00",60,${billsec},"${disposition}","BILLING","${uniqueid}",""`;
      const csv = [
        row("1773570000.1", "ANSWERED", 55),
        row("1773570000.2", "NO ANSWER", 0, ""),
        '"","broken',
        row("1773570000.3", "BUSY", 0, ""),
        row("1773570000.1", "ANSWERED", 55),
      ].join("\n");
      const upload = await engine.request("POST", "/api/v1/cdrs/asterisk", {
        key: engine.keys.network,
        query: { source: "msc-1" },
        rawBody: csv,
        headers: { "content-type": "text/csv" },
      });
      t.equal(upload.statusCode, 200, upload.body);
      t.match(upload.json(), { received: 5, accepted: 3, duplicate: 1, rejected: 1 });
      t.match(upload.json().records[0], { line: 1, outcome: "accepted", status: "guided" });
      t.match(upload.json().records[1], { line: 2, outcome: "accepted", status: "guided", note: "NO ANSWER" });
      t.match(upload.json().records[2], { line: 3, outcome: "rejected" });
      const [answeredRow] = await engine.sql<{ started_at: Date; duration: number }>(
        "select started_at, duration from usage_records where cdr_id like '1773570000.1/%'",
      );
      t.equal(
        new Date(answeredRow?.started_at ?? 0).toISOString(),
        "2026-03-15T10:04:05.000Z",
        "Berlin time of the answer",
      );
      const queued = await drain(engine);
      t.same(
        queued.map((entry) => [entry.usage.cdrId.split("/")[0], entry.usage.duration]).sort(),
        [
          ["1773570000.1", 55],
          [answered.variables.uuid, Number(answered.variables.billsec)],
        ],
        "only answered legs with billsec reach the queue",
      );
    });
}

t.test("parallel duplicates from many connections: exactly one accepted, one queued", async (t) => {
  const { engine } = await activeLineEngine(t, drivers[0] as Engine["driver"]);
  const address = await engine.app.listen({ port: 0, host: "127.0.0.1" });
  const send = (body: unknown) =>
    fetch(`${address}/api/v1/cdrs`, {
      method: "POST",
      headers: { authorization: `Bearer ${engine.keys.network}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(async (response) => ({
      status: response.status,
      body: (await response.json()) as { records: { outcome: string }[] },
    }));
  const answers = await Promise.all(
    Array.from({ length: 24 }, (_, index) => send([voice("race-1"), voice(`solo-${index}`)])),
  );
  // Batches sharing keys in opposite orders: keys are inserted in one fixed order, so no deadlock (no 500).
  const crossed = await Promise.all(
    Array.from({ length: 12 }, (_, index) =>
      send(index % 2 === 0 ? [voice("x-a"), voice("x-b"), voice("x-c")] : [voice("x-c"), voice("x-b"), voice("x-a")]),
    ),
  );
  t.ok(
    crossed.every((answer) => answer.status === 200),
    "no request failed",
  );
  t.equal(await engine.count("usage_records", "cdr_id like 'x-%'"), 3);
  const outcomes = answers.map((answer) => answer.body.records[0]?.outcome);
  t.equal(outcomes.filter((outcome) => outcome === "accepted").length, 1, "exactly one accepted");
  t.equal(outcomes.filter((outcome) => outcome === "duplicate").length, 23, "the rest duplicates");
  t.ok(answers.every((answer) => answer.status === 200 && answer.body.records[1]?.outcome === "accepted"));
  const queued = await drain(engine);
  t.equal(queued.filter((entry) => entry.usage.cdrId === "race-1").length, 1, "queued once");
  t.equal(queued.length, 28);
  t.equal(await engine.count("usage_records", "cdr_id = 'race-1'"), 1);
});

t.test("CDR sources: registered by admins, checked, disabled sources refused", async (t) => {
  const { engine } = await activeLineEngine(t, drivers[0] as Engine["driver"]);
  const sources = "/api/v1/cdr-sources";
  expectError(t, await engine.request("POST", sources, { body: { id: "msc-1", countryCode: "49" } }), 409, "duplicate");
  const badZone = await engine.request("POST", sources, {
    body: { id: "pbx-x", countryCode: "49", timeZone: "Mars/Base" },
  });
  expectError(t, badZone, 400, "invalid_field");
  t.equal(badZone.json().field, "timeZone");
  expectError(
    t,
    await engine.request("POST", sources, { body: { id: "bad id", countryCode: "49" } }),
    400,
    "invalid_field",
  );
  expectError(
    t,
    await engine.request("POST", sources, { body: { id: "pbx-y", countryCode: "049" } }),
    400,
    "invalid_field",
  );
  expectError(
    t,
    await engine.request("POST", sources, { key: engine.keys.network, body: { id: "pbx-z", countryCode: "1" } }),
    403,
    "role_not_allowed",
  );
  const same = await engine.request("POST", sources, {
    body: { id: "pbx-y", countryCode: "49", nationalPrefix: "0", internationalPrefix: "0" },
  });
  expectError(t, same, 400, "invalid_field");
  t.equal(await engine.count("cdr_sources"), 1, "nothing refused was stored");

  const listed = await engine.request("GET", sources, { key: engine.keys.network });
  t.match(listed.json(), [
    {
      id: "msc-1",
      countryCode: "49",
      nationalPrefix: "0",
      internationalPrefix: "00",
      timeZone: "Europe/Berlin",
      status: "active",
    },
  ]);
  const disabled = await engine.request("PATCH", `${sources}/msc-1`, { body: { status: "disabled" } });
  t.equal(disabled.json().status, "disabled");
  const refused = await post(engine, [voice("after-disable")]);
  t.match(refused.json().records[0], { outcome: "rejected", field: "source" });
  await engine.request("PATCH", `${sources}/msc-1`, { body: { status: "active" } });
  t.match((await post(engine, [voice("after-enable")])).json().records[0], { outcome: "accepted" });
  expectError(t, await engine.request("PATCH", `${sources}/nowhere`, { body: { status: "active" } }), 404, "not_found");
  expectError(t, await engine.request("PATCH", `${sources}/msc-1`, { body: {} }), 400, "invalid_field");
});

t.test(
  "line events reach the guiding index of another API process",
  { skip: !hasServers && "needs Redis" },
  async (t) => {
    const engine = await startEngine(t, { driver: "postgres" });
    const { accountId } = await orderReadyAccount(engine);
    // A second API process on the same database and Redis.
    const other = await buildApp(engine.config, { clock: engine.clock, logger: false, orderFulfilment: "manual" });
    t.teardown(() => other.close());
    const query = { servedMsisdn: MSISDN, servedImsi: null, startedAtMs: engine.clock.now().getTime() + 60_000 };
    t.match(other.services.usage.lines.guide(query), { ok: false, reason: "unknown_number" });

    const placed = await engine.request("POST", ORDERS, { body: lineOrder(accountId) });
    await engine.app.services.orders.fulfil(SYSTEM_ACTOR, placed.json().id);
    // The other process hears of the activation through Redis pub/sub and answers from memory alone.
    const deadline = Date.now() + 5_000;
    let guided = other.services.usage.lines.guide(query);
    while (!guided.ok && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      guided = other.services.usage.lines.guide(query);
    }
    t.match(guided, { ok: true, billingAccountId: accountId });
  },
);

import t from "tap";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { drivers, everyCase, expectError, startEngine } from "../support/engine.js";
import { simRecord } from "../support/fixtures.js";

/** SIMs and numbers: imports, secrets, reservation under contention, expiry, quarantine. */

const RESOURCE = "/tmf-api/resourceInventoryManagement/v4/resource";
const SIMS = "/api/v1/inventory/sim-imports";
const RANGES = "/api/v1/inventory/number-ranges";
const RESERVE = "/api/v1/inventory/reservations";

for (const driver of drivers) {
  t.test(`[${driver}] SIM imports: CSV and JSON, every bad line reported, nothing stored on any error`, async (t) => {
    const engine = await startEngine(t, { driver });
    const good = [simRecord(1), simRecord(2), simRecord(3)];
    const csv = [
      "iccid,imsi,pin1,puk1,ki,opc",
      ...good.map((sim) => [sim.iccid, sim.imsi, sim.pin1, sim.puk1, sim.ki, sim.opc].join(",")),
    ].join("\n");
    const imported = await engine.request("POST", SIMS, { rawBody: csv, headers: { "content-type": "text/csv" } });
    t.equal(imported.statusCode, 201, imported.body);
    t.equal(imported.json().imported, 3);

    const badLuhn = simRecord(10);
    badLuhn.iccid = `${badLuhn.iccid.slice(0, -1)}${(Number(badLuhn.iccid.slice(-1)) + 1) % 10}`;
    const refused = await engine.request("POST", SIMS, {
      body: [
        simRecord(4),
        badLuhn,
        simRecord(5, { imsi: "310260000000005" }),
        simRecord(6, { ki: "xyz" }),
        simRecord(4),
        simRecord(1, { imsi: "262019999999999" }),
        { iccid: simRecord(7).iccid },
      ],
    });
    expectError(t, refused, 400, "invalid_import");
    const errors = refused.json().errors as Array<{ line: number; field: string; reason: string }>;
    const has = (line: number, field: string, reason: RegExp) =>
      t.ok(
        errors.some((error) => error.line === line && error.field === field && reason.test(error.reason)),
        `line ${line} ${field} ${reason}`,
      );
    has(2, "iccid", /check digit/);
    has(3, "imsi", /not one of the operator's networks/);
    has(4, "ki", /32 hex/);
    has(5, "iccid", /repeats line 1/);
    has(6, "iccid", /already in the inventory/);
    has(7, "imsi", /is required/);
    t.equal(await engine.count("inventory_resources"), 3, "nothing of the refused import was stored");

    const badCsv = await engine.request("POST", SIMS, {
      rawBody: "iccid,imsi,pin\n1,2,3",
      headers: { "content-type": "text/csv" },
    });
    expectError(t, badCsv, 400, "invalid_csv", "header");
  });

  if (everyCase(driver))
    t.test(`[${driver}] secrets are sealed at rest and never leave through the API, audit or events`, async (t) => {
      const engine = await startEngine(t, { driver });
      const sim = simRecord(42);
      const created = await engine.request("POST", RESOURCE, { body: { "@type": "SIMCard", ...sim } });
      t.equal(created.statusCode, 201, created.body);
      const resource = created.json();
      t.same(resource.resourceCharacteristic, [
        { name: "iccid", value: sim.iccid },
        { name: "imsi", value: sim.imsi },
      ]);
      const everything = JSON.stringify([
        resource,
        (await engine.request("GET", resource.href)).json(),
        (await engine.request("GET", RESOURCE)).json(),
        await engine.sql("select before, after from audit_log"),
        await engine.sql("select payload from outbox_events"),
      ]);
      for (const secret of [sim.ki, sim.opc, sim.puk1])
        t.notOk(everything.includes(secret), "no secret in answers, audit or events");
      const [row] = await engine.sql<{ sealed_secrets: string }>(
        "select sealed_secrets from inventory_resources where id = $1",
        [resource.id],
      );
      t.notOk(row?.sealed_secrets.includes(sim.ki), "the stored column is ciphertext");
      t.match(row?.sealed_secrets, /^k[0-9a-f]{8}\./);
      t.same(await engine.app.services.inventory.simSecrets(resource.id), {
        pin1: sim.pin1,
        puk1: sim.puk1,
        ki: sim.ki,
        opc: sim.opc,
      });
      expectError(
        t,
        await engine.request("POST", RESOURCE, { body: { "@type": "SIMCard", ...sim } }),
        409,
        "invalid_field",
        "iccid",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] numbers: ranges, categories, pattern search, duplicates across imports`, async (t) => {
      const engine = await startEngine(t, { driver });
      const range = await engine.request("POST", RANGES, { body: { from: "+4915100000000", to: "+4915100000999" } });
      t.equal(range.json().imported, 1000);
      await engine.request("POST", RANGES, {
        body: { from: "+4915199977700", to: "+4915199977799", category: "premium" },
      });
      const overlap = await engine.request("POST", RANGES, { body: { from: "+4915100000990", to: "+4915100001010" } });
      expectError(t, overlap, 409, "numbers_exist", "from");
      t.match(overlap.json().message, /10 number\(s\) of the range exist already \(\+4915100000990/);
      expectError(
        t,
        await engine.request("POST", RANGES, { body: { from: "+4915100002000", to: "+491510000100" } }),
        400,
        "invalid_field",
        "to",
      );
      expectError(
        t,
        await engine.request("POST", RANGES, { body: { from: "0151", to: "0152" } }),
        400,
        "invalid_field",
        "from",
      );
      expectError(
        t,
        await engine.request("POST", RANGES, { body: { from: "+491", to: "+499999999" } }),
        400,
        "invalid_field",
        "from",
      );
      t.equal(await engine.count("inventory_resources"), 1100);

      const endsIn777 = await engine.request("GET", RESOURCE, {
        query: { "@type": "MSISDN", valuePattern: "*777", resourceStatus: "available" },
      });
      t.same(
        endsIn777.json().map((number: { value: string }) => number.value),
        ["+4915100000777", "+4915199977777"],
      );
      const premium = await engine.request("GET", RESOURCE, { query: { category: "premium", limit: "1" } });
      t.equal(premium.headers["x-total-count"], "100");
      expectError(
        t,
        await engine.request("GET", RESOURCE, { query: { valuePattern: "%' or 1=1 --" } }),
        400,
        "invalid_parameter",
        "valuePattern",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] reservation, expiry on the clock, assignment, quarantine and return`, async (t) => {
      const engine = await startEngine(t, { driver, env: { BSS_QUARANTINE_DAYS: "30" } });
      const inventory = engine.app.services.inventory;
      await engine.request("POST", RANGES, { body: { from: "+4915100000001", to: "+4915100000002" } });
      const first = await engine.request("POST", RESERVE, {
        body: { "@type": "MSISDN", value: "+4915100000001", ttlSeconds: 600 },
      });
      t.equal(first.statusCode, 201, first.body);
      t.equal(first.json().expiresAt, "2026-03-15T10:10:00.000Z");
      expectError(
        t,
        await engine.request("POST", RESERVE, { body: { "@type": "MSISDN", value: "+4915100000001" } }),
        409,
        "not_available",
      );

      engine.clock.advanceSeconds(601);
      const again = await engine.request("POST", RESERVE, { body: { "@type": "MSISDN", value: "+4915100000001" } });
      t.equal(again.statusCode, 201, "an expired reservation frees the number by itself");
      await t.rejects(
        inventory.assign(SYSTEM_ACTOR, first.json().id, "product-1"),
        { code: "not_found" },
        "the old reservation cannot assign",
      );
      const assigned = await inventory.assign(SYSTEM_ACTOR, again.json().id, "product-1");
      t.match(assigned, {
        lifecycleState: "assigned",
        resourceStatus: "reserved",
        usageState: "active",
        assignedTo: "product-1",
      });
      expectError(t, await engine.request("DELETE", again.json().href), 404, "not_found");

      expectError(
        t,
        await engine.request("PATCH", assigned.href, { body: { lifecycleState: "quarantine" } }),
        409,
        "illegal_transition",
      );
      await engine.app.database.transaction((tx) =>
        inventory.releaseFromHolder(tx, SYSTEM_ACTOR, "MSISDN", "+4915100000001", "product-1"),
      );
      const released = await engine.request("GET", assigned.href);
      t.equal(released.json().lifecycleState, "quarantine", "the holder's release sends it to quarantine");
      t.equal(released.json().quarantineUntil, "2026-04-14T10:10:01.000Z");
      expectError(
        t,
        await engine.request("POST", RESERVE, { body: { "@type": "MSISDN", value: "+4915100000001" } }),
        409,
        "not_available",
      );
      expectError(
        t,
        await engine.request("PATCH", assigned.href, { body: { lifecycleState: "assigned" } }),
        409,
        "illegal_transition",
      );

      engine.clock.advanceSeconds(30 * 86_400);
      t.same(await inventory.expire(SYSTEM_ACTOR), { reservations: 0, quarantines: 1 });
      t.equal(
        (await engine.request("GET", assigned.href)).json().lifecycleState,
        "available",
        "back in stock after quarantine",
      );

      const other = await engine.request("POST", RESERVE, {
        body: { "@type": "MSISDN", value: "+4915100000002", ttlSeconds: 60 },
      });
      engine.clock.advanceSeconds(61);
      t.same(await inventory.expire(SYSTEM_ACTOR), { reservations: 1, quarantines: 0 });
      t.equal(
        (await engine.request("GET", `${RESOURCE}/${other.json().resource.id}`)).json().lifecycleState,
        "available",
      );

      const kept = await engine.request("POST", RESERVE, { body: { "@type": "MSISDN", valuePattern: "*2" } });
      t.equal(kept.json().resource.value, "+4915100000002");
      t.equal((await engine.request("DELETE", kept.json().href)).statusCode, 204);
      const events = await engine.sql<{ event_type: string }>(
        "select event_type from outbox_events where api = 'resourceInventoryManagement'",
      );
      t.ok(
        events.filter((event) => event.event_type === "ResourceStateChangeEvent").length >= 8,
        "every state change is an event",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] SIM lifecycle by PATCH: block, retire, illegal moves`, async (t) => {
      const engine = await startEngine(t, { driver });
      const sim = (await engine.request("POST", RESOURCE, { body: { "@type": "SIMCard", ...simRecord(7) } })).json();
      expectError(
        t,
        await engine.request("PATCH", sim.href, { body: { lifecycleState: "quarantine" } }),
        400,
        "invalid_field",
        "lifecycleState",
      );
      expectError(
        t,
        await engine.request("PATCH", sim.href, { body: { lifecycleState: "assigned" } }),
        409,
        "illegal_transition",
      );
      t.equal(
        (await engine.request("PATCH", sim.href, { body: { lifecycleState: "blocked" } })).json().lifecycleState,
        "blocked",
      );
      t.equal(
        (await engine.request("PATCH", sim.href, { body: { lifecycleState: "retired" } })).json().lifecycleState,
        "retired",
      );
      const final = await engine.request("PATCH", sim.href, { body: { lifecycleState: "available" } });
      expectError(t, final, 409, "illegal_transition");
      t.match(final.json().message, /retired is final/);
      expectError(
        t,
        await engine.request("POST", RESERVE, { body: { "@type": "SIMCard", id: sim.id } }),
        409,
        "not_available",
      );

      // A standard client speaks TMF639's states: suspended blocks, available frees; the rest is not a change.
      const other = (await engine.request("POST", RESOURCE, { body: { "@type": "SIMCard", ...simRecord(8) } })).json();
      t.match(other, { resourceStatus: "available", usageState: "idle", administrativeState: "unlocked" });
      const suspended = await engine.request("PATCH", other.href, { body: { resourceStatus: "suspended" } });
      t.match(suspended.json(), {
        lifecycleState: "blocked",
        resourceStatus: "suspended",
        administrativeState: "locked",
      });
      const listed = await engine.request("GET", RESOURCE, { query: { resourceStatus: "suspended" } });
      t.same(
        listed
          .json()
          .map((item: { id: string }) => item.id)
          .sort(),
        [sim.id, other.id].sort(),
        "suspended lists the blocked and the retired",
      );
      const freed = await engine.request("PATCH", other.href, { body: { resourceStatus: "available" } });
      t.match(freed.json(), { lifecycleState: "available", resourceStatus: "available" });
      for (const body of [
        { resourceStatus: "standby" },
        {},
        { resourceStatus: "available", lifecycleState: "blocked" },
      ]) {
        expectError(t, await engine.request("PATCH", other.href, { body }), 400, "invalid_field");
      }
    });
}

t.test("50 concurrent reservations for the last 10 numbers: exactly 10 succeed, none twice", async (t) => {
  const engine = await startEngine(t);
  await engine.request("POST", RANGES, { body: { from: "+4915100000010", to: "+4915100000019" } });
  const attempts = await Promise.all(
    Array.from({ length: 50 }, () =>
      engine.request("POST", RESERVE, { body: { "@type": "MSISDN", valuePattern: "+49151*" } }),
    ),
  );
  const won = attempts.filter((response) => response.statusCode === 201);
  const lost = attempts.filter((response) => response.statusCode === 409);
  t.equal(won.length, 10);
  t.equal(lost.length, 40);
  t.ok(
    lost.every((response) => response.json().code === "not_available"),
    "the others fail cleanly",
  );
  const numbers = won.map((response) => response.json().resource.value);
  t.equal(new Set(numbers).size, 10, "no number reserved twice");
  t.equal(await engine.count("inventory_resources", "state = 'reserved'"), 10);
});

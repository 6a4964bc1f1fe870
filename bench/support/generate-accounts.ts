import { randomUUID } from "node:crypto";
import type { FastifyInstance } from "fastify";
import postgres from "postgres";
import type { RatedResult } from "../../src/modules/charging/rating.service.js";
import { recordRated } from "../../src/modules/charging/summaries.js";
import { SYSTEM_ACTOR } from "../../src/platform/audit.js";
import { billPeriod } from "../../src/shared/calendar.js";
import { simRecord } from "../../test/support/fixtures.js";

/**
 * The generator of postpaid accounts later benchmarks reuse (issue 25): N accounts written in bulk, not through the
 * API, each exactly as the engine would have them after a CRM created the customer and the account and a line order
 * was fulfilled and its usage rated.
 *
 * How: one prototype account goes in through the front door (the engine's API and services, in the caller's engine,
 * whose clock stands at the order time): a person, a customer with a mobile contact, a postpaid account (cycle day
 * 15, so that no cycle-day-1 run ever takes it), one order of Postpaid M (`plan-postpaid-m`) with the Data 5 GB
 * add-on (`addon-data-5gb`) under it, fulfilled (`orders.fulfil`), and its usage written by the engine's own
 * `recordRated` (the rating transaction's statement). Then every row of it that billing reads is cloned N times with
 * set-based SQL, `insert … select … from <the prototype's rows> cross join generate_series(from, to)`, a chunk of
 * accounts per transaction, two chunks at a time: every column copied from the prototype's row (so the bought prices,
 * terms, promotions, history reasons and charge terms are what fulfilment wrote, whatever it writes), only ids, names,
 * numbers, the cycle day (1) and the usage period overridden. Per account n (0…N-1):
 *
 *   individuals 1, customers 1, billing_accounts 1 (postpaid, cycle day 1, Europe/Berlin, EUR, DE, the prototype's
 *   terms and credit limit), products 2 (the line with its own MSISDN and ICCID, the add-on with parentId the line),
 *   product_history 6 (created, pendingActive, active for each, as fulfilment wrote them), one_time_charges 2
 *   (activation and SIM, unbilled), usage_summaries `summaries` (default 15) of the usage period holding the order,
 *   rated_usage `ratedPerSummary` (default 2) per summary numbered 1…last_seq, every column as recordRated wrote the
 *   prototype's.
 *
 * Usage: per line one summary per key the DE tariff's rating can give a line in a period (service and zone, the zone
 * being the called number's destination): voice to national, national-mobile, premium, international-eu,
 * international-na, international-world and without a destination (incoming, roaming), SMS to the same seven, data:
 * 15 keys, so 15 summaries is the most a one-line account can have (issue 24's 20 would need a second line).
 *
 * Not written: orders and order items (products name an order id; no foreign key, billing never reads orders),
 * inventory (numbers and SIMs are text on the line; no foreign key), usage records, charging state in Redis, audit
 * rows and events of the creation. Ids are deterministic, shaped like the engine's UUIDv7 (the order time, then a
 * kind and the index), so a benchmark names account n as `generatedId("account", n, base)` without reading them.
 *
 * Once per database. The caller's engine must be built with `orderFulfilment: "manual"` and its clock standing at the
 * order time.
 * 100,000 accounts (5.8 million rows) take about 75 s on 2 cores (bench/bill-run prints the figures).
 */

export const ID_KINDS = {
  individual: 1,
  customer: 2,
  account: 3,
  line: 4,
  addon: 5,
  order: 6,
  charge: 7,
  summary: 8,
  usage: 9,
} as const;
export type IdKind = keyof typeof ID_KINDS;

/** Sub-indexes per account: charges, summaries and rated rows of account n are n × this + k. */
const PER_ACCOUNT = { charge: 4, summary: 16, usage: 64 } as const;

/** The usage of a line: (record type, destination, unit price), one summary each. */
const USAGE_KINDS: ReadonlyArray<[string, string | null, number]> = [
  ["voice", "national", 0.09],
  ["voice", "national-mobile", 0.09],
  ["voice", "premium", 0.99],
  ["voice", "international-eu", 0.19],
  ["voice", "international-na", 0.29],
  ["voice", "international-world", 0.99],
  ["voice", null, 0.05],
  ["sms", "national-mobile", 0.09],
  ["sms", "national", 0.09],
  ["sms", "premium", 0.99],
  ["sms", "international-eu", 0.19],
  ["sms", "international-na", 0.19],
  ["sms", "international-world", 0.19],
  ["sms", null, 0.19],
  ["data", null, 0.02],
];

export interface GenerateOptions {
  /** Accounts to write (default 100,000). */
  count?: number;
  /** Summaries per account, 1…15 (default 15). */
  summaries?: number;
  /** Rated rows per summary, 1…4 (default 2). */
  ratedPerSummary?: number;
  /** Accounts per transaction (default 5,000). */
  chunk?: number;
  /** Chunks written at once, each on its own connection (default 2). */
  concurrency?: number;
  /** VACUUM ANALYZE the tables written afterwards, as a database in service would have them (default true). */
  vacuum?: boolean;
}

export interface GeneratedAccounts {
  count: number;
  /** The ids' time part (the order time in ms): `generatedId(kind, n, base)`. */
  base: number;
  /** The usage period's key (cycle day 1, Europe/Berlin), the period the usage is in. */
  usagePeriod: string;
  summaries: number;
  ratedPerSummary: number;
  /** Rows written per table. */
  rows: Record<string, number>;
  totalRows: number;
  /** Seconds: the prototype through the API, the bulk writes, VACUUM ANALYZE. */
  seconds: { prototype: number; bulk: number; vacuum: number; total: number };
  prototypeAccountId: string;
  /** The id of account n (0…count-1). */
  accountId(n: number): string;
}

/** Account n's id (or a row's of another kind), as the generator writes it. */
export function generatedId(kind: IdKind, n: number, base: number): string {
  const hex =
    base.toString(16).padStart(12, "0") +
    "7" +
    ID_KINDS[kind].toString(16).padStart(3, "0") +
    "8" +
    BigInt(n).toString(16).padStart(15, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The same id as a SQL expression of an integer expression. */
function idSql(kind: IdKind, index: string, base: number): string {
  const prefix = `${base.toString(16).padStart(12, "0")}7${ID_KINDS[kind].toString(16).padStart(3, "0")}8`;
  return `('${prefix}' || lpad(to_hex((${index})::bigint), 15, '0'))::uuid`;
}

const lit = (value: string) => `'${value.replace(/'/g, "''")}'`;

export async function generateAccounts(
  app: FastifyInstance,
  databaseUrl: string,
  options: GenerateOptions = {},
): Promise<GeneratedAccounts> {
  const count = options.count ?? 100_000;
  const summaries = options.summaries ?? USAGE_KINDS.length;
  const ratedPerSummary = options.ratedPerSummary ?? 2;
  const chunk = options.chunk ?? 5_000;
  const concurrency = options.concurrency ?? 2;
  if (summaries < 1 || summaries > USAGE_KINDS.length) throw new Error(`summaries: 1…${USAGE_KINDS.length}`);
  if (ratedPerSummary < 1 || ratedPerSummary > 4) throw new Error("ratedPerSummary: 1…4");
  const started = performance.now();

  const proto = await prototype(app, summaries, ratedPerSummary);
  const base = proto.orderedAtMs;
  const usagePeriod = billPeriod(base, 1, "Europe/Berlin").key;
  const prototypeSeconds = (performance.now() - started) / 1000;

  const sql = postgres(databaseUrl, { max: concurrency, onnotice: () => {} });
  try {
    const columns = new Map<string, string[]>();
    for (const table of TABLES) {
      const rows = await sql<{ column_name: string }[]>`
        select column_name from information_schema.columns
        where table_schema = 'public' and table_name = ${table} and is_identity = 'NO' and is_generated = 'NEVER'
        order by ordinal_position`;
      columns.set(
        table,
        rows.map((row) => row.column_name),
      );
    }
    const id = (kind: IdKind, index = "n") => idSql(kind, index, base);
    const product = (column: string) =>
      `case ${column} when ${lit(proto.lineId)}::uuid then ${id("line")} when ${lit(proto.addonId)}::uuid then ${id("addon")} end`;
    const order = `case when p.order_id is null then null else ${id("order")} end`;
    // Per table: the prototype's rows (with k, their rank), and the columns that differ per account.
    const plans: Array<{ table: string; from: string; set: Record<string, string> }> = [
      {
        table: "individuals",
        from: `select *, 0 as k from individuals where id = ${lit(proto.individualId)}`,
        set: { id: id("individual"), family_name: `'No ' || n` },
      },
      {
        table: "customers",
        from: `select *, 0 as k from customers where id = ${lit(proto.customerId)}`,
        set: { id: id("customer"), individual_id: id("individual"), name: `'Bench ' || n` },
      },
      {
        table: "billing_accounts",
        from: `select *, 0 as k from billing_accounts where id = ${lit(proto.accountId)}`,
        set: { id: id("account"), customer_id: id("customer"), name: `'Bench ' || n`, bill_cycle_day: "1" },
      },
      {
        table: "products",
        from: `select *, 0 as k from products where billing_account_id = ${lit(proto.accountId)}`,
        set: {
          id: product("p.id"),
          billing_account_id: id("account"),
          customer_id: id("customer"),
          parent_id: `case when p.parent_id is null then null else ${id("line")} end`,
          msisdn: `case when p.msisdn is null then null else '+4917' || lpad(n::text, 9, '0') end`,
          iccid: `case when p.iccid is null then null else '894988' || lpad(n::text, 13, '0') end`,
          order_id: order,
        },
      },
      {
        table: "product_history",
        from: `select *, id as k from product_history where product_id in (${lit(proto.lineId)}::uuid, ${lit(proto.addonId)}::uuid)`,
        set: { product_id: product("p.product_id"), order_id: order },
      },
      {
        table: "one_time_charges",
        from: `select *, row_number() over (order by id) - 1 as k from one_time_charges
          where billing_account_id = ${lit(proto.accountId)}`,
        set: {
          id: id("charge", `n * ${PER_ACCOUNT.charge} + p.k`),
          product_id: product("p.product_id"),
          billing_account_id: id("account"),
          order_id: order,
          source_id: `case when p.source_id = p.order_id::text then (${id("order")})::text else p.source_id end`,
        },
      },
      {
        table: "usage_summaries",
        from: `select *, row_number() over (order by id) - 1 as k from usage_summaries
          where billing_account_id = ${lit(proto.accountId)}`,
        set: {
          id: id("summary", `n * ${PER_ACCOUNT.summary} + p.k`),
          billing_account_id: id("account"),
          usage_period: lit(usagePeriod),
          product_id: product("p.product_id"),
        },
      },
      {
        table: "rated_usage",
        from: `select r.*, row_number() over (order by r.summary_id, r.seq) - 1 as k, s.k as summary_k
          from rated_usage r
          join (select id, row_number() over (order by id) - 1 as k from usage_summaries
                where billing_account_id = ${lit(proto.accountId)}) s on s.id = r.summary_id
          where r.billing_account_id = ${lit(proto.accountId)}`,
        set: {
          usage_id: id("usage", `n * ${PER_ACCOUNT.usage} + p.k`),
          billing_account_id: id("account"),
          product_id: product("p.product_id"),
          spend_period: lit(usagePeriod),
          summary_id: id("summary", `n * ${PER_ACCOUNT.summary} + p.summary_k`),
        },
      },
    ];
    const statements = plans.map(({ table, from, set }) => {
      const names = columns.get(table) ?? [];
      for (const column of Object.keys(set)) {
        if (!names.includes(column)) throw new Error(`${table}.${column}: no such column to set`);
      }
      const list = names.map((name) => `"${name}"`).join(", ");
      const values = names.map((name) => set[name] ?? `p."${name}"`).join(", ");
      return {
        table,
        text: `insert into ${table} (${list}) select ${values} from (${from}) p
          cross join generate_series($1::bigint, $2::bigint) as n order by n, p.k`,
      };
    });
    const rows: Record<string, number> = Object.fromEntries(TABLES.map((table) => [table, 0]));
    const bulkStarted = performance.now();
    let next = 0;
    const worker = async () => {
      for (let from = next; from < count; from = next) {
        next += chunk;
        const to = Math.min(from + chunk, count) - 1;
        await sql.begin(async (tx) => {
          for (const statement of statements) {
            const result = await tx.unsafe(statement.text, [from, to]);
            rows[statement.table] = (rows[statement.table] ?? 0) + result.count;
          }
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const bulkSeconds = (performance.now() - bulkStarted) / 1000;
    const vacuumStarted = performance.now();
    if (options.vacuum !== false) {
      for (const table of TABLES) await sql.unsafe(`vacuum (analyze) ${table}`);
    }
    const vacuumSeconds = (performance.now() - vacuumStarted) / 1000;
    return {
      count,
      base,
      usagePeriod,
      summaries,
      ratedPerSummary,
      rows,
      totalRows: Object.values(rows).reduce((sum, n) => sum + n, 0),
      seconds: {
        prototype: prototypeSeconds,
        bulk: bulkSeconds,
        vacuum: vacuumSeconds,
        total: (performance.now() - started) / 1000,
      },
      prototypeAccountId: proto.accountId,
      accountId: (n: number) => generatedId("account", n, base),
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const TABLES = [
  "individuals",
  "customers",
  "billing_accounts",
  "products",
  "product_history",
  "one_time_charges",
  "usage_summaries",
  "rated_usage",
];

interface Prototype {
  orderedAtMs: number;
  individualId: string;
  customerId: string;
  accountId: string;
  lineId: string;
  addonId: string;
}

/** The prototype account, through the engine's API and services; its usage by the engine's recordRated. */
async function prototype(app: FastifyInstance, summaries: number, ratedPerSummary: number): Promise<Prototype> {
  await app.services.catalog.publish(SYSTEM_ACTOR, "catalog");
  const key = (await app.services.access.create(SYSTEM_ACTOR, { name: "bench generator", role: "admin" })).key;
  const call = async (method: string, url: string, body?: unknown) => {
    const response = await app.inject({
      method: method as "POST",
      url,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    if (response.statusCode >= 300) throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
    return response.json() as Record<string, unknown>;
  };
  await call("POST", "/api/v1/inventory/number-ranges", { from: "+4915199999990", to: "+4915199999999" });
  await call("POST", "/api/v1/inventory/sim-imports", [simRecord(999_999_001)]);
  const party = await call("POST", "/tmf-api/party/v4/individual", { givenName: "Bench", familyName: "Prototype" });
  const customer = await call("POST", "/tmf-api/customerManagement/v4/customer", {
    name: "Bench prototype",
    engagedParty: { id: party.id, "@referredType": "Individual" },
    contactMedium: [{ mediumType: "mobile", characteristic: { phoneNumber: "+4915799999999" } }],
  });
  const account = await call("POST", "/tmf-api/accountManagement/v4/billingAccount", {
    name: "Bench prototype",
    relatedParty: [{ id: customer.id, "@referredType": "Customer" }],
    accountType: "postpaid",
    currency: "EUR",
    billCycleDay: 15,
    timeZone: "Europe/Berlin",
    taxJurisdiction: "DE",
    creditLimit: { unit: "EUR", value: 500 },
  });
  const accountId = account.id as string;
  const order = await call("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    billingAccount: { id: accountId },
    productOrderItem: [
      { id: "1", action: "add", productOffering: { id: "plan-postpaid-m" } },
      {
        id: "2",
        action: "add",
        productOffering: { id: "addon-data-5gb" },
        productOrderItemRelationship: [{ id: "1", relationshipType: "reliesOn" }],
      },
    ],
  });
  await app.services.orders.fulfil(SYSTEM_ACTOR, order.id as string);
  const products = await app.services.subscriptions.productsOfAccount(app.database.db, accountId);
  const line = products.find((product) => product.kind === "plan");
  const addon = products.find((product) => product.kind === "addon");
  if (products.length !== 2 || line === undefined || addon === undefined || addon.parentId !== line.id) {
    throw new Error(`the prototype order gave ${products.map((p) => `${p.kind} ${p.status}`).join(", ")}`);
  }
  if (line.status !== "active" || addon.status !== "active") {
    throw new Error(`the prototype's products are ${line.status} and ${addon.status}, not active`);
  }
  // The engine's business time when the order was placed: the ids' time part and the usage's start.
  const orderedAtMs = line.createdAt.getTime();

  // Its usage, rated after the order and before the period ends (cycle day 1 or 15: 17 to 31 March for an order on
  // the 17th), by the rating transaction's own statement.
  const period = billPeriod(orderedAtMs, 15, "Europe/Berlin");
  const rated: RatedResult[] = [];
  for (const [kind, [recordType, destination, price]] of USAGE_KINDS.slice(0, summaries).entries()) {
    for (let n = 0; n < ratedPerSummary; n++) {
      const quantity = recordType === "voice" ? 60 + 17 * n : recordType === "sms" ? 1 : 1_048_576 * (n + 1);
      const units = recordType === "data" ? n + 1 : recordType === "voice" ? Math.ceil(quantity / 60) : 1;
      rated.push({
        usageId: randomUUID(),
        billingAccountId: accountId,
        productId: line.id,
        startedAt: new Date(orderedAtMs + 3_600_000 + (kind * ratedPerSummary + n) * 1_800_000).toISOString(),
        tariffId: "tariff-de-eur",
        tariffVersion: 1,
        recordType,
        destination,
        roaming: destination === null && recordType === "voice" ? "eu" : "home",
        quantity,
        allowanceUnits: 0,
        chargedUnits: quantity,
        draws: [],
        amount: (units * price).toFixed(2),
        currency: "EUR",
        prepaid: false,
        spendPeriod: period.key,
      });
    }
  }
  const ratedAt = new Date(orderedAtMs + 3_600_000 + rated.length * 1_800_000).toISOString();
  await app.database.transaction((tx) => recordRated(tx, rated, ratedAt));
  return {
    orderedAtMs,
    individualId: party.id as string,
    customerId: customer.id as string,
    accountId,
    lineId: line.id,
    addonId: addon.id,
  };
}

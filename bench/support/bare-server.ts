import { randomUUID } from "node:crypto";
import Fastify from "fastify";
import { Redis } from "ioredis";
import postgres from "postgres";
import { shardOf } from "../../src/modules/usage/usage-queue.js";

/**
 * The ceilings bench/http compares the engine with, on the same runtime and loader:
 * - GET /hello: a bare Fastify hello-world, no I/O at all;
 * - GET /list and POST /create: the same SQL statements the engine runs for a billing-account list and
 *   create, sent through postgres.js with no validation, mapping, auth or audit logic between them;
 * - POST /ingest: the statements a CDR batch costs the engine (the one insert of keys, usage and suspense
 *   rows, then one XADD per record in a pipeline), with only JSON.parse and a row mapping in between. With
 *   BARE_SHARDS set, each record goes to its account's shard as the engine's queue puts it (bench/rating, whose
 *   bare workers then rate the shards); without it, to a shard picked from the cdrId (bench/ingest).
 */
const sql = process.env.DATABASE_URL ? postgres(process.env.DATABASE_URL, { max: 10, onnotice: () => {} }) : null;
const redis = process.env.REDIS_URL ? new Redis(process.env.REDIS_URL) : null;
const app = Fastify({ logger: false, bodyLimit: 8 * 1_048_576 });
app.get("/health", async () => ({ status: "ok" }));
app.get("/hello", async () => ({ hello: "world" }));

if (sql !== null) {
  app.get("/list", async () => {
    const [rows, counted] = await Promise.all([
      sql`select * from billing_accounts where state = 'active' order by id limit 20 offset 0`,
      sql`select count(*)::int as total from billing_accounts where state = 'active'`,
    ]);
    const ids = [...new Set(rows.map((row) => row.customer_id as string))];
    const names = await sql`select id, name from customers where id in ${sql(ids)}`;
    return { rows, total: counted[0]?.total, names };
  });

  // The statements a reservation runs: pick and lock a free number, mark it reserved, audit, event.
  app.post("/reserve", async (_request, reply) => {
    const reserved = await sql.begin(async (tx) => {
      const [candidate] = await tx`
        select * from inventory_resources
        where type = 'MSISDN' and state = 'available' and value like '+4916%'
        order by value limit 1 for update skip locked`;
      if (!candidate) return null;
      const [row] = await tx`
        update inventory_resources set state = 'reserved', reservation_id = ${randomUUID()},
          reserved_until = now() + interval '15 minutes', updated_at = now()
        where id = ${candidate.id as string} returning *`;
      await tx`insert into audit_log (occurred_at, actor_role, action, entity_type, entity_id, before, after)
        values (now(), 'admin', 'reserve', 'resource', ${candidate.id as string}, ${tx.json(candidate as never)}, ${tx.json(row as never)})`;
      await tx`insert into outbox_events (event_id, event_type, api, resource_type, resource_id, event_time, payload)
        values (${randomUUID()}, 'ResourceStateChangeEvent', 'resourceInventoryManagement', 'resource',
          ${candidate.id as string}, now(), ${tx.json(row as never)})`;
      return row;
    });
    return reply.code(reserved ? 201 : 409).send(reserved ?? { code: "not_available" });
  });

  app.post("/create", async (request, reply) => {
    const body = request.body as { relatedParty: { id: string }[]; name: string };
    const customerId = body.relatedParty[0]?.id as string;
    const row = await sql.begin(async (tx) => {
      await tx`select * from customers where id = ${customerId}`;
      const [inserted] = await tx`
        insert into billing_accounts (id, customer_id, name, account_type, state, currency, bill_cycle_day,
          payment_terms_days, time_zone, tax_jurisdiction, credit_limit, bill_limit, contacts, created_at, updated_at)
        values (${randomUUID()}, ${customerId}, ${body.name}, 'postpaid', 'active', 'EUR', 15, 14, 'Europe/Berlin',
          'DE', '150', '80', '[]', now(), now())
        returning *`;
      await tx`select id, name from customers where id in ${tx([customerId])}`;
      await tx`insert into audit_log (occurred_at, actor_role, action, entity_type, entity_id, after)
        values (now(), 'admin', 'create', 'billingAccount', ${inserted?.id as string}, ${tx.json(inserted as never)})`;
      return inserted;
    });
    return reply.code(201).send(row);
  });
}

if (sql !== null && redis !== null) {
  const prefix = process.env.BARE_REDIS_PREFIX ?? "bare:";
  const shards = process.env.BARE_SHARDS ? Number(process.env.BARE_SHARDS) : null;
  const streamOf = (row: { cdr_id: unknown; billing_account_id: string }) =>
    `${prefix}usage-queue:{s${shards === null ? String(row.cdr_id).length % 16 : shardOf(row.billing_account_id, shards)}}`;
  const lines = new Map(
    (JSON.parse(process.env.BARE_LINES ?? "[]") as Array<{ msisdn: string; productId: string; accountId: string }>).map(
      (line) => [line.msisdn, line],
    ),
  );
  app.post("/ingest", async (request) => {
    const records = request.body as Array<Record<string, unknown>>;
    const now = new Date().toISOString();
    const rows = records.map((record) => ({
      id: randomUUID(),
      source: record.source,
      cdr_id: record.cdrId,
      digest: "0123456789abcdef0123456789abcdef0123456789a",
      format: "native",
      record_type: record.recordType,
      served_msisdn: record.servedMSISDN,
      served_imsi: null,
      called_number: record.calledNumber,
      direction: "outgoing",
      visited_network: null,
      rating_group: null,
      started_at: record.recordOpeningTime,
      duration: record.duration,
      volume_uplink: null,
      volume_downlink: null,
      messages: null,
      chargeable: true,
      note: null,
      product_id: lines.get(String(record.servedMSISDN))?.productId ?? randomUUID(),
      billing_account_id: lines.get(String(record.servedMSISDN))?.accountId ?? randomUUID(),
      suspense_reason: null,
      suspense_message: null,
    }));
    const inserted = await sql`
      with input as (
        select * from jsonb_to_recordset(${sql.json(rows as never)}) as x(
          id uuid, source text, cdr_id text, digest text, format text, record_type text, served_msisdn text,
          served_imsi text, called_number text, direction text, visited_network text, rating_group bigint,
          started_at timestamptz, duration integer, volume_uplink bigint, volume_downlink bigint,
          messages integer, chargeable boolean, note text, product_id uuid, billing_account_id uuid,
          suspense_reason text, suspense_message text)
      ),
      keys as (
        insert into usage_keys (source, cdr_id, usage_id, digest)
        select source, cdr_id, id, digest from input on conflict do nothing returning usage_id
      ),
      usage as (
        insert into usage_records (id, source, cdr_id, format, record_type, served_msisdn, served_imsi,
          called_number, direction, visited_network, rating_group, started_at, duration, volume_uplink,
          volume_downlink, messages, chargeable, note, product_id, billing_account_id, received_at, guided_at)
        select i.id, i.source, i.cdr_id, i.format, i.record_type, i.served_msisdn, i.served_imsi,
          i.called_number, i.direction, i.visited_network, i.rating_group, i.started_at, i.duration,
          i.volume_uplink, i.volume_downlink, i.messages, i.chargeable, i.note, i.product_id,
          i.billing_account_id, ${now}::timestamptz, ${now}::timestamptz
        from input i join keys k on k.usage_id = i.id returning id
      ),
      suspended as (
        insert into usage_suspense (usage_id, reason, message, since, attempts, last_attempt_at)
        select i.id, i.suspense_reason, i.suspense_message, ${now}::timestamptz, 1, ${now}::timestamptz
        from input i join keys k on k.usage_id = i.id where i.suspense_reason is not null returning usage_id
      )
      select usage_id from keys`;
    const pipeline = redis.pipeline();
    for (const row of rows) pipeline.xadd(streamOf(row), "*", "d", JSON.stringify(row));
    await pipeline.exec();
    return { accepted: inserted.length };
  });
}

await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.on("SIGTERM", () => {
  app
    .close()
    .then(() => sql?.end({ timeout: 2 }))
    .then(() => redis?.quit())
    .then(() => process.exit(0));
});

import { randomUUID } from "node:crypto";
import Fastify from "fastify";
import postgres from "postgres";

/**
 * The ceilings bench/http compares the engine with, on the same runtime and loader:
 * - GET /hello: a bare Fastify hello-world, no I/O at all;
 * - GET /list and POST /create: the same SQL statements the engine runs for a billing-account list and
 *   create, sent through postgres.js with no validation, mapping, auth or audit logic between them.
 */
const sql = process.env.DATABASE_URL ? postgres(process.env.DATABASE_URL, { max: 10, onnotice: () => {} }) : null;
const app = Fastify({ logger: false });
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

await app.listen({ port: Number(process.env.PORT), host: "127.0.0.1" });
process.on("SIGTERM", () => {
  app
    .close()
    .then(() => sql?.end({ timeout: 2 }))
    .then(() => process.exit(0));
});

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import t from "tap";
import { MIGRATIONS_FOLDER, openDatabase } from "../../src/platform/database.js";
import { hasServers, services } from "../support/engine.js";

/** Two engines starting together against an empty database migrate one after the other. */

t.test(
  "concurrent migrations under the advisory lock",
  { skip: hasServers ? false : "needs PostgreSQL (embedded run)" },
  async (t) => {
    const name = `bss_t_${services.runId}_migrate_${process.pid}`;
    const admin = postgres(services.pgUrl as string, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    t.teardown(async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    });
    const url = new URL(services.pgUrl as string);
    url.pathname = `/${name}`;
    const engines = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl: url.toString(), dataDir: "", poolMax: 2 })),
    );
    await Promise.all(engines.map((engine) => engine.migrate()));
    const check = postgres(url.toString(), { max: 1, onnotice: () => {} });
    const applied = await check`select count(*)::int as total from drizzle.__drizzle_migrations`;
    const tables =
      await check`select count(*)::int as total from information_schema.tables where table_schema = 'public'`;
    await check.end();
    // The template must not be touched while other files clone it, so the expected set comes from the SQL.
    const created = new Set<string>();
    for (const file of readdirSync(MIGRATIONS_FOLDER).filter((name) => name.endsWith(".sql"))) {
      const text = readFileSync(path.join(MIGRATIONS_FOLDER, file), "utf8");
      for (const match of text.matchAll(/CREATE TABLE "(\w+)"/g)) created.add(match[1] as string);
      for (const match of text.matchAll(/DROP TABLE "(\w+)"/g)) created.delete(match[1] as string);
    }
    await Promise.all(engines.map((engine) => engine.close()));
    t.ok((applied[0]?.total ?? 0) >= 1, "migrations recorded");
    const journal = (await import("../../migrations/meta/_journal.json", { with: { type: "json" } })).default as {
      entries: unknown[];
    };
    t.equal(applied[0]?.total, journal.entries.length, "each migration applied exactly once");
    t.equal(tables[0]?.total, created.size, "every table the migrations create exists once");
  },
);

/**
 * Migration 0015 backfills usage summaries (issue 22): rated rows that exist before it get their summaries, numbered
 * in acceptance order, with the totals of their rows; a row billed one by one before it sets its summary's mark.
 */
t.test(
  "the summaries migration backfills the rated rows that exist",
  { skip: hasServers ? false : "needs PostgreSQL (embedded run)" },
  async (t) => {
    const name = `bss_t_${services.runId}_backfill_${process.pid}`;
    const admin = postgres(services.pgUrl as string, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(services.pgUrl as string);
    url.pathname = `/${name}`;
    const client = postgres(url.toString(), { max: 1, onnotice: () => {} });
    const before = mkdtempSync(path.join(tmpdir(), "bss-migrations-"));
    t.teardown(async () => {
      await client.end();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
      rmSync(before, { recursive: true, force: true });
    });
    // The migrations as they were before 0015: the same files, the journal cut there.
    cpSync(MIGRATIONS_FOLDER, before, { recursive: true });
    const journalFile = path.join(before, "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalFile, "utf8")) as { entries: Array<{ tag: string }> };
    journal.entries = journal.entries.filter((entry) => entry.tag < "0015");
    writeFileSync(journalFile, JSON.stringify(journal));
    const db = drizzle(client);
    await migrate(db, { migrationsFolder: before });

    const account = "019cf000-0000-7000-8000-000000000001";
    const line = "019cf000-0000-7000-8000-000000000002";
    const row = (usage: string, destination: string | null, amount: string, billed: boolean) =>
      client`insert into rated_usage (usage_id, billing_account_id, product_id, rated_at, started_at, tariff_id,
          tariff_version, record_type, destination, roaming, quantity, allowance_units, charged_units, draws, amount,
          currency, prepaid, spend_period, billed_at)
        values (${usage}, ${account}, ${line}, now(), now(), 'tariff', 1, 'voice', ${destination}, 'home', 60, 0, 60,
          '[]', ${amount}, 'EUR', false, '2026-03-01', ${billed ? new Date().toISOString() : null})`;
    await row("019cf000-0000-7000-8000-000000000013", "national", "0.10", false);
    await row("019cf000-0000-7000-8000-000000000011", "national", "0.25", true);
    await row("019cf000-0000-7000-8000-000000000012", null, "1.00", false);

    await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
    const summaries = await client<
      Array<{ zone: string; quantity: string; amount: string; last_seq: string; billed_seq: string }>
    >`select zone, quantity::text, amount::text, last_seq::text, billed_seq::text from usage_summaries order by zone`;
    t.same(summaries, [
      { zone: "", quantity: "60", amount: "1.000000", last_seq: "1", billed_seq: "0" },
      { zone: "national", quantity: "120", amount: "0.350000", last_seq: "2", billed_seq: "1" },
    ]);
    const numbered = await client<Array<{ usage_id: string; seq: string }>>`
      select usage_id::text, seq::text from rated_usage where destination = 'national' order by seq`;
    t.same(
      numbered.map((item) => item.usage_id),
      ["019cf000-0000-7000-8000-000000000011", "019cf000-0000-7000-8000-000000000013"],
      "numbered in acceptance order",
    );
    const columns = await client`select 1 from information_schema.columns
      where table_name = 'rated_usage' and column_name = 'billed_at'`;
    t.equal(columns.length, 0, "rated rows are no longer marked billed one by one");
  },
);

/**
 * Migration 0017 (issue 23): product history gains the suspension's reason. Before it a product could be suspended
 * only on request, so every row that leaves one suspended (the suspension, and a suspended line's barring) gets
 * customerRequest; other rows stay without one. Accounts gain their previous cycle and VAT ID, empty.
 */
t.test(
  "the cycle and suspension migration backfills the suspensions that exist",
  { skip: hasServers ? false : "needs PostgreSQL (embedded run)" },
  async (t) => {
    const name = `bss_t_${services.runId}_backfill17_${process.pid}`;
    const admin = postgres(services.pgUrl as string, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const url = new URL(services.pgUrl as string);
    url.pathname = `/${name}`;
    const client = postgres(url.toString(), { max: 1, onnotice: () => {} });
    const before = mkdtempSync(path.join(tmpdir(), "bss-migrations-"));
    t.teardown(async () => {
      await client.end();
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
      rmSync(before, { recursive: true, force: true });
    });
    cpSync(MIGRATIONS_FOLDER, before, { recursive: true });
    const journalFile = path.join(before, "meta", "_journal.json");
    const journal = JSON.parse(readFileSync(journalFile, "utf8")) as { entries: Array<{ tag: string }> };
    journal.entries = journal.entries.filter((entry) => entry.tag < "0017");
    writeFileSync(journalFile, JSON.stringify(journal));
    const db = drizzle(client);
    await migrate(db, { migrationsFolder: before });

    const person = "019cf000-0000-7000-8000-000000000101";
    const customer = "019cf000-0000-7000-8000-000000000102";
    const account = "019cf000-0000-7000-8000-000000000103";
    const line = "019cf000-0000-7000-8000-000000000104";
    const order = "019cf000-0000-7000-8000-000000000105";
    await client`insert into individuals (id, given_name, family_name, status, contact_medium, identifications,
        created_at, updated_at) values (${person}, 'Ada', 'Lovelace', 'validated', '[]', '[]', now(), now())`;
    await client`insert into customers (id, name, status, individual_id, contact_medium, created_at, updated_at)
        values (${customer}, 'Ada', 'approved', ${person}, '[]', now(), now())`;
    await client`insert into billing_accounts (id, customer_id, name, account_type, state, currency, bill_cycle_day,
        payment_terms_days, time_zone, tax_jurisdiction, contacts, created_at, updated_at)
        values (${account}, ${customer}, 'Main', 'postpaid', 'active', 'EUR', 1, 14, 'Europe/Berlin', 'DE', '[]',
          now(), now())`;
    await client`insert into products (id, billing_account_id, customer_id, offering_id, offering_version, name, kind,
        status, msisdn, iccid, currency, prices, order_id, created_at, updated_at, activated_at, barred)
        values (${line}, ${account}, ${customer}, 'plan-postpaid-m', 1, 'Plan M', 'plan', 'suspended',
          '+4915100000000', '89492000000000000011', 'EUR', '[]', ${order}, now(), now(), now(), 'credit')`;
    const changes: Array<[string | null, string, string]> = [
      [null, "active", "activated on the network"],
      ["active", "suspended", "suspended on request"],
      ["suspended", "suspended", "barred: the account reached its credit limit"],
      ["suspended", "active", "resumed on request"],
      ["active", "suspended", "suspended on request"],
    ];
    await client`insert into one_time_charges (id, product_id, billing_account_id, order_id, price_id, name, amount,
        currency, tax_class, offering_version, created_at)
        values ('019cf000-0000-7000-8000-000000000106', ${line}, ${account}, ${order}, 'price-sim', 'SIM card', 4.99,
          'EUR', 'vat-standard', 1, now())`;
    for (const [from, to, reason] of changes) {
      await client`insert into product_history (product_id, at, from_status, to_status, reason)
          values (${line}, now(), ${from}, ${to}, ${reason})`;
    }

    await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
    const history = await client<Array<{ to_status: string; suspension_reason: string | null }>>`
      select to_status, suspension_reason from product_history order by id`;
    t.same(
      history.map((row) => [row.to_status, row.suspension_reason]),
      [
        ["active", null],
        ["suspended", "customerRequest"],
        ["suspended", "customerRequest"],
        ["active", null],
        ["suspended", "customerRequest"],
      ],
    );
    const [stored] = await client`select previous_bill_cycle_day, previous_time_zone, cycle_changed_at, vat_id
        from billing_accounts`;
    t.same(
      { ...stored },
      { previous_bill_cycle_day: null, previous_time_zone: null, cycle_changed_at: null, vat_id: null },
      "accounts keep their cycle, with nothing before it",
    );
    // Migrations 0020–0021: the one barring reason moves into the set.
    const [barring] = await client<Array<{ barring_reasons: string[] }>>`select barring_reasons from products`;
    t.same(barring?.barring_reasons, ["credit"], "a line barred for credit keeps that reason");
    // Migration 0022: the one-time charges so far came from orders.
    t.same(
      [...(await client`select source, source_id from one_time_charges`)],
      [{ source: "order", source_id: order }],
      "an order's charge has the order as its source",
    );
  },
);

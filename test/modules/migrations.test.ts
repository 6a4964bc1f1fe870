import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
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

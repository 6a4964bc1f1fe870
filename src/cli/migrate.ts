import { ConfigError, loadConfig } from "../config.js";
import { DataFolderInUse, openDatabase } from "../platform/database.js";

/** `npm run db:migrate`: applies the migrations in migrations/ to DATABASE_URL (or the embedded PGlite). */
try {
  const config = loadConfig();
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolMax: 1,
    holder: "npm run db:migrate",
  });
  try {
    await database.migrate();
    process.stdout.write(`migrations applied (${database.kind})\n`);
  } finally {
    await database.close();
  }
} catch (error) {
  process.stderr.write(
    `${error instanceof ConfigError || error instanceof DataFolderInUse ? error.message : String(error)}\n`,
  );
  process.exit(1);
}

import { defineConfig } from "drizzle-kit";

/** drizzle-kit reads every module's tables and writes reviewed SQL migrations to migrations/. */
export default defineConfig({
  dialect: "postgresql",
  schema: ["./src/platform/*.tables.ts", "./src/modules/*/*.tables.ts"],
  out: "./migrations",
  strict: true,
});

import { buildApp } from "../app.js";
import { loadConfigOrExit } from "../config.js";
import { DataFolderInUse } from "../platform/database.js";

/**
 * `npm run reconcile [-- --check]`: compares every account's charging state in Redis with the PostgreSQL ledger
 * and prints the differences; without --check it then rebuilds every account from the ledger under a new
 * fencing epoch (workers re-acquire their leases and re-price). Exit 0; with --check, 1 if anything differs.
 */
const config = loadConfigOrExit();
const check = process.argv.includes("--check");
const app = await buildApp({ ...config, logLevel: "warn" }, { holder: "npm run reconcile" }).catch((error: unknown) => {
  if (!(error instanceof DataFolderInUse)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
try {
  const report = await app.services.charging.reconcile.run(check ? "check" : "rebuild");
  process.stdout.write(
    `${JSON.stringify({ mode: check ? "check" : "rebuild", accounts: report.accounts, rebuilt: report.rebuilt, mismatched: report.mismatched }, null, 2)}\n`,
  );
  process.exitCode = check && report.mismatched.length > 0 ? 1 : 0;
} finally {
  await app.close();
}

/**
 * `npm run bench [name…]`: runs the named benchmarks (all by default) and prints their tables. Each
 * benchmark measures its infrastructure ceiling in the same run and reports itself as a ratio of it.
 */
import { benchBillRun, printBillRun } from "./bill-run.js";
import { benchBilling, printBilling } from "./billing.js";
import { benchHttp, printHttp } from "./http.js";
import { benchIngest, printIngest } from "./ingest.js";
import { benchInventory, printInventory } from "./inventory.js";
import { benchInvoices, printInvoices } from "./invoices.js";
import { benchOrders, printOrders } from "./orders.js";
import { benchPayments, printPayments } from "./payments.js";
import { benchRating, printRating } from "./rating.js";
import { benchRatingEngine, printRatingEngine } from "./rating-engine.js";
import { benchStatements, printStatements } from "./statements.js";

const BENCHMARKS: Record<string, () => Promise<void>> = {
  http: async () => printHttp(await benchHttp()),
  "rating-engine": async () => printRatingEngine(await benchRatingEngine()),
  inventory: async () => printInventory(await benchInventory()),
  orders: async () => printOrders(await benchOrders()),
  ingest: async () => printIngest(await benchIngest()),
  rating: async () => printRating(await benchRating()),
  billing: async () => printBilling(await benchBilling()),
  invoices: async () => printInvoices(await benchInvoices()),
  "bill-run": async () => printBillRun(await benchBillRun()),
  payments: async () => printPayments(await benchPayments()),
  statements: async () => printStatements(await benchStatements()),
};

const requested = process.argv.slice(2);
const names = requested.length > 0 ? requested : Object.keys(BENCHMARKS);
for (const name of names) {
  const run = BENCHMARKS[name];
  if (run === undefined) {
    process.stderr.write(`unknown benchmark ${name}; known: ${Object.keys(BENCHMARKS).join(", ")}\n`);
    process.exit(2);
  }
  await run();
}

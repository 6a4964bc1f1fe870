import t from "tap";
import { RatingService } from "../../src/modules/charging/rating.service.js";

/**
 * The hourly reconciliation rebuilds only differences that last: a batch whose step applied in the store and whose
 * rows were about to commit shows as a difference once, and rebuilding it would drop the step from the store.
 */
t.test("only differences still the same on the second look are rebuilt", async (t) => {
  const calls: string[] = [];
  const checks = [
    {
      accounts: 3,
      mismatched: [
        { accountId: "a", differences: ["balance 5 in the store, 9 in the ledger"] },
        { accountId: "b", differences: ["spend 0 in the store, 4 in the ledger"] },
        { accountId: "c", differences: ["balance 1 in the store, 2 in the ledger"] },
      ],
    },
    {
      accounts: 2,
      mismatched: [
        { accountId: "a", differences: ["balance 5 in the store, 9 in the ledger"] },
        { accountId: "c", differences: ["balance 1 in the store, 3 in the ledger"] },
      ],
    },
  ];
  const reconcile = {
    async run(mode: "check" | "rebuild", only?: readonly string[]) {
      calls.push(`${mode}${only ? `:${only.join(",")}` : ""}`);
      return mode === "check" ? (checks.shift() ?? { accounts: 0, mismatched: [] }) : { accounts: 0, mismatched: [] };
    },
  };
  const log = { warn() {} } as never;
  const outcome = await RatingService.reconcileJob(reconcile, log, 1);
  t.same(calls, ["check", "check:a,b,c", "rebuild:a"], "b settled, c moved on (still in flight): only a rebuilt");
  t.same(outcome, { accounts: 3, rebuilt: 1 });
});

import t from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { drivers, type Engine, expectError, startEngine } from "../support/engine.js";
import { activateLine, billingAccountBody, createCustomer, orderReadyAccount } from "../support/fixtures.js";

/**
 * Bill runs (issue 25): every postpaid account of a cycle day billed once for the period, in batches, with progress;
 * an account that fails is reported and does not stop the run, and is taken again by a retry.
 */

const RUNS = "/api/v1/bill-runs";
const BA = "/tmf-api/accountManagement/v4/billingAccount";

type Run = {
  id: string;
  state: string;
  total: number;
  done: number;
  invoiced: number;
  nothingToBill: number;
  failed: number;
  pending: number;
  invoicedAmount: Array<{ unit: string; value: string }>;
  failures: Array<{ billingAccountId: string; code: string; reason: string }>;
};

/** Accounts on cycle day 1 with a line each (the first has the stock), one prepaid, one on day 15, one in France. */
async function cycleOfAccounts(engine: Engine) {
  const first = await orderReadyAccount(engine, { sims: 12, numbers: ["+4915100000000", "+4915100000099"] });
  const accounts = [first.accountId];
  for (let index = 0; index < 2; index++) {
    const customer = await createCustomer(engine);
    const account = await engine.request("POST", BA, { body: billingAccountBody(customer.id) });
    accounts.push(account.json().id);
  }
  for (const id of accounts) await activateLine(engine, id);
  const customer = await createCustomer(engine);
  const french = (
    await engine.request("POST", BA, { body: billingAccountBody(customer.id, { taxJurisdiction: "FR" }) })
  ).json().id as string;
  await activateLine(engine, french);
  const day15 = (
    await engine.request("POST", BA, { body: billingAccountBody(customer.id, { billCycleDay: 15 }) })
  ).json().id as string;
  await activateLine(engine, day15);
  const prepaid = (
    await engine.request("POST", BA, {
      body: billingAccountBody(customer.id, { accountType: "prepaid", creditLimit: undefined }),
    })
  ).json().id as string;
  await activateLine(engine, prepaid, "plan-prepaid-s");
  return { accounts, french, day15, prepaid };
}

for (const driver of drivers) {
  t.test(`${driver}: a run bills every account of the cycle once; a failure is reported and retried`, async (t) => {
    const clock = new ManualClock("2027-03-17T09:00:00Z");
    const engine = await startEngine(t, { clock, driver, env: { BSS_BILL_RUN_BATCH: "2" } });
    const { accounts, french, day15 } = await cycleOfAccounts(engine);
    clock.set("2027-04-01T08:00:00Z");

    const started = await engine.request("POST", RUNS, {
      key: engine.keys.finance,
      body: { billCycleDay: 1, periodEnd: "2027-04-01" },
    });
    t.equal(started.statusCode, 201, started.body);
    const run = started.json() as Run;
    t.match(run, { state: "running", total: 4, pending: 4, done: 0 }, "the three German accounts and the French one");
    const again = await engine.request("POST", RUNS, {
      key: engine.keys.finance,
      body: { billCycleDay: 1, periodEnd: "2027-04-01" },
    });
    t.equal(again.statusCode, 200);
    t.equal(again.json().id, run.id, "the same run");

    // Two workers at once (batches of two): every account settled once.
    const worked = await Promise.all([
      engine.app.services.billRuns.work(run.id),
      engine.app.services.billRuns.work(run.id),
    ]);
    t.equal(worked[0].invoiced + worked[1].invoiced, 3);
    t.equal(worked[0].failed + worked[1].failed, 1);
    const progress = (await engine.request("GET", `${RUNS}/${run.id}`, { key: engine.keys.finance })).json() as Run;
    t.match(progress, { state: "completedWithFailures", done: 3, invoiced: 3, failed: 1, pending: 0 });
    t.same(progress.invoicedAmount, [{ unit: "EUR", value: "133.92" }], "3 × 44.64");
    t.match(progress.failures, [{ billingAccountId: french, code: "no_issuing_entity" }]);
    const numbers = await engine.sql<{ number: string; billing_account_id: string }>(
      "select number, billing_account_id from invoices order by number",
    );
    t.same(
      numbers.map((row) => row.number),
      ["DE-INV-2027-000001", "DE-INV-2027-000002", "DE-INV-2027-000003"],
      "gapless",
    );
    t.same(numbers.map((row) => row.billing_account_id).sort(), [...accounts].sort(), "each account once");
    t.notOk(
      numbers.some((row) => row.billing_account_id === day15),
      "an account on another cycle day is not in the run",
    );
    const ledger = await engine.sql<{ total: string }>("select sum(amount)::text as total from receivable_entries");
    t.equal(Number(ledger[0]?.total), 133.92, "the ledger holds the invoices");
    const steps = await engine.sql<{ after: { invoices: number } }>(
      "select after from audit_log where entity_type = 'billRun' and action = 'issue' order by id",
    );
    t.equal(steps.length, 2, "one audit row per batch of two");
    t.equal(
      steps.reduce((sum, step) => sum + step.after.invoices, 0),
      3,
    );
    t.equal(await engine.count("audit_log", "entity_type = 'customerBill'"), 0, "none per invoice");

    // The cause fixed (the account moves to Germany), the failed account is taken again.
    const moved = await engine.request("PATCH", `${BA}/${french}`, { body: { taxJurisdiction: "DE" } });
    t.equal(moved.statusCode, 200, moved.body);
    const retried = await engine.request("POST", `${RUNS}/${run.id}/retry`, { key: engine.keys.finance });
    t.equal(retried.statusCode, 200, retried.body);
    t.match(retried.json(), { state: "running", pending: 1, failed: 0 });
    await engine.app.services.billRuns.work(run.id);
    const finished = (await engine.request("GET", `${RUNS}/${run.id}`, { key: engine.keys.finance })).json() as Run;
    t.match(finished, { state: "completed", invoiced: 4, failed: 0, failures: [] });
    t.equal(await engine.count("invoices"), 4);
    expectError(
      t,
      await engine.request("POST", `${RUNS}/${run.id}/retry`, { key: engine.keys.finance }),
      409,
      "no_failures",
    );

    // A run of named accounts for the same period: the invoices stand, nothing is billed twice.
    const named = await engine.request("POST", RUNS, {
      key: engine.keys.finance,
      body: { billingAccountIds: [accounts[0], french] },
    });
    t.equal(named.statusCode, 201, named.body);
    await engine.app.services.billRuns.work(named.json().id);
    t.match((await engine.request("GET", named.json().href, { key: engine.keys.finance })).json(), {
      state: "completed",
      invoiced: 2,
    });
    t.equal(await engine.count("invoices"), 4, "no second invoice");
    const events = await engine.sql<{ event_type: string }>(
      "select distinct event_type from outbox_events where resource_type = 'billRun' order by event_type",
    );
    t.same(
      events.map((row) => row.event_type),
      ["BillRunCreateEvent", "BillRunStateChangeEvent"],
    );
  });
}

t.test("the daily job starts the runs of the cycle days whose periods end that day", async (t) => {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock });
  const { day15 } = await cycleOfAccounts(engine);
  // 15 April: cycle day 15's periods end; the job's slot is that UTC day (Berlin's midnight was at 22:00 before).
  clock.set("2027-04-15T00:30:00Z");
  const outcome = await engine.app.services.billRuns.startDue(new Date("2027-04-15T00:00:00Z"));
  t.match(outcome, { started: ["15/2027-04-15: 1 accounts"], invoiced: 1 });
  t.same(
    (await engine.sql<{ billing_account_id: string }>("select billing_account_id from invoices")).map(
      (row) => row.billing_account_id,
    ),
    [day15],
  );
  // The same day again (a catch-up, another process): the run exists, nothing more.
  const twice = await engine.app.services.billRuns.startDue(new Date("2027-04-15T00:00:00Z"));
  t.match(twice, { started: [], invoiced: 0 });
  // 30 April: cycle days 30 and 31 end their periods (April has no 31st); nobody bills on them here.
  clock.set("2027-04-30T00:30:00Z");
  const april30 = await engine.app.services.billRuns.startDue(new Date("2027-04-30T00:00:00Z"));
  t.match(april30, { started: ["30/2027-04-30: 0 accounts", "31/2027-04-30: 0 accounts"] });
});

t.test("bad requests start nothing", async (t) => {
  const clock = new ManualClock("2027-04-01T08:00:00Z");
  const engine = await startEngine(t, { clock });
  const start = (body: unknown, key = engine.keys.finance) => engine.request("POST", RUNS, { key, body });
  expectError(t, await start({ billCycleDay: 1, periodEnd: "2027-05-01" }), 422, "period_not_ended");
  expectError(t, await start({ billCycleDay: 1, periodEnd: "2027-03-15" }), 422, "not_a_period_end");
  expectError(t, await start({ billCycleDay: 32, periodEnd: "2027-04-01" }), 400, "invalid_field");
  expectError(t, await start({ billCycleDay: 1, periodEnd: "April 1st" }), 400, "invalid_field");
  expectError(t, await start({ billCycleDay: 1 }), 400, "invalid_field");
  expectError(t, await start({ billingAccountIds: ["00000000-0000-7000-8000-000000000000"] }), 422, "unknown_account");
  expectError(t, await start({ billCycleDay: 1, periodEnd: "2027-04-01" }, engine.keys.crm), 403, "role_not_allowed");
  expectError(
    t,
    await engine.request("POST", `${RUNS}/00000000-0000-7000-8000-000000000000/retry`, { key: engine.keys.finance }),
    404,
    "not_found",
  );
  t.equal(await engine.count("bill_runs"), 0);
  t.equal(await engine.count("bill_run_items"), 0);
});

t.test("the final bill: after the last line ends and the wait, in place of the period's cycle invoice", async (t) => {
  const { SYSTEM_ACTOR } = await import("../../src/platform/audit.js");
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock });
  const { accountId } = await orderReadyAccount(engine);
  const { lineId } = await activateLine(engine, accountId);
  clock.set("2027-04-01T08:00:00Z");
  await engine.app.services.billRuns.start(SYSTEM_ACTOR, { billCycleDay: 1, periodEnd: "2027-04-01" });
  await engine.app.services.billRuns.work();
  t.equal(await engine.count("invoices", "kind = 'cycle'"), 1, "March, and April in advance");

  // 20 April: the line is disconnected.
  clock.set("2027-04-20T08:00:00Z");
  const order = await engine.request("POST", "/tmf-api/productOrderingManagement/v4/productOrder", {
    body: {
      billingAccount: { id: accountId },
      productOrderItem: [{ id: "1", action: "delete", product: { id: lineId } }],
    },
  });
  t.equal(order.statusCode, 201, order.body);
  await engine.app.services.orders.fulfil(SYSTEM_ACTOR, order.json().id);

  // Two days on, the final bill still waits for late CDRs (3 days); on the fourth it is issued.
  clock.set("2027-04-22T08:00:00Z");
  t.match(await engine.app.services.billRuns.issueDueFinalBills(), { issued: 0 });
  clock.set("2027-04-24T08:00:00Z");
  t.match(await engine.app.services.billRuns.issueDueFinalBills(), { issued: 1 });
  t.match(await engine.app.services.billRuns.issueDueFinalBills(), { issued: 0 }, "once");
  const [final] = (
    await engine.request("GET", "/tmf-api/customerBillManagement/v4/customerBill", {
      query: { category: "last" },
    })
  ).json() as Array<{ id: string; runType: string; usagePeriod: string; amountDue: { value: number } }>;
  t.match(final, { runType: "offCycle", usagePeriod: "2027-04-01" });
  const lines = (
    await engine.request("GET", "/tmf-api/customerBillManagement/v4/appliedCustomerBillingRate", {
      query: { "bill.id": final?.id ?? "" },
    })
  ).json() as Array<{ type: string; taxIncludedAmount: { value: number } }>;
  // April was charged in advance (19.99); 20–30 April, 11 of 30 days, come back: 19.99 × 11 / 30 = 7.33.
  t.same(
    lines.map((line) => [line.type, line.taxIncludedAmount.value]),
    [["unused", -7.33]],
  );
  t.equal(final?.amountDue.value, -7.33);

  // 1 May: the cycle run finds April billed by the final bill: nothing more.
  clock.set("2027-05-01T08:00:00Z");
  const { run } = await engine.app.services.billRuns.start(SYSTEM_ACTOR, { billCycleDay: 1, periodEnd: "2027-05-01" });
  await engine.app.services.billRuns.work(run.id);
  t.match(await engine.app.services.billRuns.get(SYSTEM_ACTOR, run.id), { state: "completed", total: 1 });
  t.equal(await engine.count("invoices"), 2, "April billed once");
});

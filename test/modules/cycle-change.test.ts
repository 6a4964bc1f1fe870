import t from "tap";
import { chargingEngine, postCdrs, voiceCdr } from "../support/charging.js";
import { drivers } from "../support/engine.js";
import { activateLine } from "../support/fixtures.js";

/**
 * Charging across a change of an account's bill cycle (DESIGN.md §10, issue 23): rating, spend to date, allowances
 * and usage summaries count in the transition period and then in the new cycle's periods — the periods billing uses.
 */

for (const driver of drivers) {
  t.test(
    `[${driver}] after a change of bill cycle, usage counts in the transition period, then the new cycle`,
    async (t) => {
      const { engine, accountId } = await chargingEngine(t, driver, "postpaid");
      const { lineId, msisdn } = await activateLine(engine, accountId, "plan-postpaid-m");
      const rating = engine.app.services.charging.rating;
      const account = `/tmf-api/accountManagement/v4/billingAccount/${accountId}`;
      const spendToDate = async () =>
        (await engine.request("GET", `/tmf-api/prepayBalanceManagement/v4/accumulatedBalance/${accountId}`)).json();
      // 15 March: from day 1 in Berlin to day 15 in New York, when March's period ends (1 April, midnight in Berlin).
      const changed = await engine.request("PATCH", account, {
        body: { billCycleDay: 15, timeZone: "America/New_York" },
      });
      t.match(changed.json(), {
        billCycleDay: 1,
        timeZone: "Europe/Berlin",
        pendingBillCycle: { billCycleDay: 15, timeZone: "America/New_York", effectiveDate: "2026-04-01" },
      });

      // The transition period runs from there to New York's 15 April, keyed by its first day there (31 March).
      engine.clock.set("2026-04-10T10:00:00Z");
      t.match((await engine.request("GET", account)).json(), {
        billCycleDay: 15,
        timeZone: "America/New_York",
        nextBillDate: "2026-04-15",
      });
      await postCdrs(engine, [
        voiceCdr(msisdn, "+33123456789", 120, "2026-04-05T10:00:00Z"),
        voiceCdr(msisdn, "+4930123456", 60, "2026-04-05T11:00:00Z"),
      ]);
      t.equal(await rating.rateOnce("test"), 2);
      t.match(await spendToDate(), {
        totalBalance: { amount: 0.58, units: "EUR" },
        validFor: { startDateTime: "2026-03-31T22:00:00.000Z", endDateTime: "2026-04-15T04:00:00.000Z" },
      });
      // Its allowance is prorated like its charges: 15 local days of the 31 from 15 March to 15 April in New York.
      t.same(
        await engine.sql(
          `select to_char(period_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI') as start, granted::int
           from allowance_buckets where product_id = $1 and service = 'voice' order by period_start`,
          [lineId],
        ),
        [
          { start: "2026-02-28T23:00", granted: 16_451 },
          { start: "2026-03-31T22:00", granted: 14_516 },
        ],
      );

      // From 15 April the new cycle's periods; a late call of 12 April still counts in the transition period.
      engine.clock.set("2026-04-20T10:00:00Z");
      await postCdrs(engine, [
        voiceCdr(msisdn, "+33123456789", 120, "2026-04-16T10:00:00Z"),
        voiceCdr(msisdn, "+33123456789", 60, "2026-04-12T10:00:00Z"),
      ]);
      t.equal(await rating.rateOnce("test"), 2);
      t.match(await spendToDate(), {
        totalBalance: { amount: 0.58, units: "EUR" },
        validFor: { startDateTime: "2026-04-15T04:00:00.000Z", endDateTime: "2026-05-15T04:00:00.000Z" },
      });
      t.same(
        await engine.sql(
          `select to_char(started_at at time zone 'UTC', 'MM-DD') as day, spend_period from rated_usage
           where billing_account_id = $1 order by started_at`,
          [accountId],
        ),
        [
          { day: "04-05", spend_period: "2026-03-31" },
          { day: "04-05", spend_period: "2026-03-31" },
          { day: "04-12", spend_period: "2026-03-31" },
          { day: "04-16", spend_period: "2026-04-15" },
        ],
      );
      t.same(
        await engine.sql(
          "select distinct usage_period from usage_summaries where billing_account_id = $1 order by usage_period",
          [accountId],
        ),
        [{ usage_period: "2026-03-31" }, { usage_period: "2026-04-15" }],
        "billing reads the same periods",
      );
      // Spend to date per period: the charging store agrees with the ledger.
      const state = await engine.app.services.charging.store.read(accountId);
      const ledger = await engine.sql<{ period: string; micro: string }>(
        `select spend_period as period, (sum(amount) * 1000000)::bigint::text as micro from rated_usage
           where billing_account_id = $1 group by spend_period order by spend_period`,
        [accountId],
      );
      t.same(
        Object.fromEntries(
          [...state.spend].filter(([, value]) => value !== 0n).map(([key, value]) => [key, `${value}`]),
        ),
        Object.fromEntries(ledger.map((row) => [row.period, row.micro])),
        "spend per period: store = ledger",
      );
    },
  );
}

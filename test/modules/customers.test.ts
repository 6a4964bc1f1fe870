import t from "tap";
import { drivers, everyCase, expectError, startEngine } from "../support/engine.js";
import {
  activateLine,
  billingAccountBody,
  createBillingAccount,
  createCustomer,
  createIndividual,
  orderReadyAccount,
} from "../support/fixtures.js";

/** Customer and account rules, run on every database driver the engine supports (DESIGN.md §6). */

const IND = "/tmf-api/party/v4/individual";
const ORG = "/tmf-api/party/v4/organization";
const CUS = "/tmf-api/customerManagement/v4/customer";
const BA = "/tmf-api/accountManagement/v4/billingAccount";

for (const driver of drivers) {
  t.test(`[${driver}] parties: validation of contact data and lifecycles`, async (t) => {
    const engine = await startEngine(t, { driver });
    const email = (emailAddress: string) => ({ mediumType: "email", characteristic: { emailAddress } });
    const phone = (phoneNumber: string) => ({ mediumType: "mobile", characteristic: { phoneNumber } });
    const post = (body: object) => engine.request("POST", IND, { body: { givenName: "A", familyName: "B", ...body } });

    expectError(
      t,
      await post({ contactMedium: [email("not-an-address")] }),
      400,
      "invalid_field",
      "contactMedium[0].characteristic.emailAddress",
    );
    expectError(
      t,
      await post({ contactMedium: [phone("0151 1234567")] }),
      400,
      "invalid_field",
      "contactMedium[0].characteristic.phoneNumber",
    );
    expectError(
      t,
      await post({ contactMedium: [{ mediumType: "mobile", characteristic: {} }] }),
      400,
      "invalid_field",
      "contactMedium[0].characteristic.phoneNumber",
    );
    expectError(
      t,
      await post({ contactMedium: [{ mediumType: "pigeon", characteristic: {} }] }),
      400,
      "invalid_field",
      "contactMedium[0].mediumType",
    );
    expectError(t, await post({ nationality: "XX" }), 400, "invalid_field", "nationality");
    expectError(t, await post({ birthDate: "2026-02-30" }), 400, "invalid_field", "birthDate");
    expectError(t, await post({ birthDate: "2030-01-01" }), 400, "invalid_field", "birthDate");
    expectError(t, await post({ status: "deceased" }), 400, "invalid_field", "status");
    const idDoc = { identificationType: "passport", identificationId: "C01X00T47" };
    expectError(
      t,
      await post({ individualIdentification: [idDoc, idDoc] }),
      400,
      "invalid_field",
      "individualIdentification[1]",
    );
    expectError(
      t,
      await post({ contactMedium: Array.from({ length: 21 }, () => email("a@example.com")) }),
      400,
      "invalid_field",
      "contactMedium",
    );
    t.equal(await engine.count("individuals"), 0, "nothing stored");

    const ok = await post({
      contactMedium: [email("ada@example.org"), phone("+4915112345678")],
      birthDate: "2000-02-29",
      nationality: "DE",
    });
    t.equal(ok.statusCode, 201, ok.body);
    const url = ok.json().href as string;
    t.equal((await engine.request("PATCH", url, { body: { status: "validated" } })).json().status, "validated");
    expectError(t, await engine.request("PATCH", url, { body: { status: "initialized" } }), 409, "illegal_transition");

    const org = await engine.request("POST", ORG, {
      body: { tradingName: "Acme", isLegalEntity: true, organizationType: "company" },
    });
    t.equal(org.statusCode, 201);
    t.equal((await engine.request("PATCH", org.json().href, { body: { status: "closed" } })).json().status, "closed");
    expectError(
      t,
      await engine.request("PATCH", org.json().href, { body: { status: "validated" } }),
      409,
      "illegal_transition",
    );
  });

  if (everyCase(driver))
    t.test(`[${driver}] customers reference a party that exists and cannot switch it`, async (t) => {
      const engine = await startEngine(t, { driver });
      const party = await createIndividual(engine);
      const missing = "00000000-0000-7000-8000-000000000000";
      expectError(
        t,
        await engine.request("POST", CUS, {
          body: { name: "X", engagedParty: { id: missing, "@referredType": "Individual" } },
        }),
        422,
        "unknown_reference",
        "engagedParty.id",
      );
      expectError(
        t,
        await engine.request("POST", CUS, {
          body: { name: "X", engagedParty: { id: party.id, "@referredType": "Organization" } },
        }),
        422,
        "unknown_reference",
        "engagedParty.id",
      );
      expectError(
        t,
        await engine.request("POST", CUS, {
          body: { name: "X", engagedParty: { id: party.id, "@referredType": "Robot" } },
        }),
        400,
        "invalid_field",
        "engagedParty.@referredType",
      );
      expectError(
        t,
        await engine.request("POST", CUS, {
          body: { name: "X", status: "closed", engagedParty: { id: party.id, "@referredType": "Individual" } },
        }),
        400,
        "invalid_field",
        "status",
      );

      const created = await engine.request("POST", CUS, {
        body: {
          name: "Ada",
          engagedParty: { id: party.id, "@referredType": "Individual" },
          validFor: { startDateTime: "2026-01-01T00:00:00Z" },
        },
      });
      t.equal(created.statusCode, 201);
      const customer = created.json();
      t.equal(customer.status, "approved", "a new customer is approved unless told otherwise");
      t.equal(customer.engagedParty.name, "Ada Lovelace");
      t.equal(customer.engagedParty.href, `${IND}/${party.id}`);

      const other = await createIndividual(engine, { givenName: "Bob" });
      expectError(
        t,
        await engine.request("PATCH", customer.href, {
          body: { engagedParty: { id: other.id, "@referredType": "Individual" } },
        }),
        422,
        "immutable_field",
        "engagedParty",
      );
      expectError(
        t,
        await engine.request("PATCH", customer.href, {
          body: { validFor: { startDateTime: "2026-01-02T00:00:00Z", endDateTime: "2026-01-01T00:00:00Z" } },
        }),
        400,
        "invalid_field",
        "validFor.endDateTime",
      );
      expectError(t, await engine.request("DELETE", `${IND}/${party.id}`), 409, "party_in_use");
      t.equal(await engine.count("individuals"), 2, "the party is still there");
    });

  if (everyCase(driver))
    t.test(`[${driver}] billing accounts: limits, currency, time zone and ownership rules`, async (t) => {
      const engine = await startEngine(t, { driver });
      const customer = await createCustomer(engine);
      const post = (overrides: Record<string, unknown>) =>
        engine.request("POST", BA, { body: billingAccountBody(customer.id, overrides) });

      expectError(t, await post({ accountType: "prepaid" }), 422, "limit_not_applicable", "creditLimit");
      expectError(t, await post({ billLimit: { unit: "EUR", value: 0 } }), 400, "invalid_field", "billLimit.value");
      expectError(
        t,
        await post({ currency: "JPY", creditLimit: { unit: "JPY", value: 10.5 } }),
        400,
        "invalid_field",
        "creditLimit.value",
      );
      expectError(t, await post({ state: "closed" }), 400, "invalid_field", "state");
      expectError(
        t,
        await post({
          relatedParty: [
            { id: customer.id, "@referredType": "Customer" },
            { id: customer.id, "@referredType": "Customer" },
          ],
        }),
        400,
        "invalid_field",
        "relatedParty",
      );
      // An Individual is accepted as the owner's party (its customer found or made): a customer's id is no individual.
      expectError(
        t,
        await post({ relatedParty: [{ id: customer.id, "@referredType": "Individual" }] }),
        422,
        "unknown_reference",
        "relatedParty[0].id",
      );
      expectError(
        t,
        await post({ relatedParty: [{ id: customer.id, "@referredType": "Supplier" }] }),
        400,
        "invalid_field",
        "relatedParty[0].@referredType",
      );
      expectError(t, await post({ timeZone: "+01:00" }), 400, "invalid_field", "timeZone");
      t.equal(await engine.count("billing_accounts"), 0);

      const jpy = await post({
        currency: "JPY",
        creditLimit: { unit: "JPY", value: 50000 },
        timeZone: "Asia/Tokyo",
        taxJurisdiction: "JP",
      });
      t.equal(jpy.statusCode, 201, jpy.body);
      t.same(jpy.json().creditLimit, { unit: "JPY", value: 50000 });
      const kwd = await post({ currency: "KWD", creditLimit: { unit: "KWD", value: 12.345 }, taxJurisdiction: "KW" });
      t.same(kwd.json().creditLimit, { unit: "KWD", value: 12.345 }, "three-decimal currencies keep three decimals");
      const [stored] = await engine.sql<{ credit_limit: string }>(
        "select credit_limit::text from billing_accounts where id = $1",
        [kwd.json().id],
      );
      t.equal(stored?.credit_limit, "12.345000", "stored exactly as numeric");
      const prepaid = await post({ accountType: "prepaid", creditLimit: undefined, taxJurisdiction: "ES-CN" });
      t.equal(prepaid.statusCode, 201, prepaid.body);
      t.equal(prepaid.json().accountType, "prepaid");
      t.equal(prepaid.json().timeZone, "Europe/Berlin");
      const defaults = await engine.request("POST", BA, {
        body: {
          name: "Defaults",
          relatedParty: [{ id: customer.id, "@referredType": "Customer" }],
          currency: "EUR",
          taxJurisdiction: "DE",
        },
      });
      t.match(defaults.json(), {
        accountType: "postpaid",
        billCycleDay: 1,
        paymentTermsDays: 14,
        timeZone: "UTC",
        state: "active",
      });

      expectError(
        t,
        await engine.request("PATCH", prepaid.json().href, { body: { accountType: "postpaid" } }),
        422,
        "immutable_field",
        "accountType",
      );
      const other = await createCustomer(engine);
      expectError(
        t,
        await engine.request("PATCH", prepaid.json().href, {
          body: { relatedParty: [{ id: other.id, "@referredType": "Customer" }] },
        }),
        422,
        "immutable_field",
        "relatedParty",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] the bill cycle day is clamped to the month's last day in the account's zone`, async (t) => {
      const engine = await startEngine(t, { driver });
      const account = await createBillingAccount(engine, { billCycleDay: 31, timeZone: "Pacific/Auckland" });
      const nextBill = async (at: string) => {
        engine.clock.set(at);
        return (await engine.request("GET", account.href)).json().nextBillDate;
      };
      t.equal(await nextBill("2027-02-10T00:00:00Z"), "2027-02-28", "February has 28 days in 2027");
      t.equal(await nextBill("2028-02-10T00:00:00Z"), "2028-02-29", "and 29 in 2028");
      t.equal(await nextBill("2027-04-29T09:00:00Z"), "2027-04-30", "April's last day is its bill day");
      // 29 April 13:00 UTC is already 30 April in Auckland: the period that ends on 30 April is over (its bill is cut
      // that day), so the next bill date is the end of the period that began: 31 May.
      t.equal(await nextBill("2027-04-29T13:00:00Z"), "2027-05-31", "the account's zone decides the date");
    });

  if (everyCase(driver))
    t.test(`[${driver}] an account without lines changes its bill cycle at once`, async (t) => {
      const engine = await startEngine(t, { driver });
      const account = await createBillingAccount(engine);
      const patch = (body: object) => engine.request("PATCH", account.href, { body });
      const changed = await patch({ billCycleDay: 15 });
      t.equal(changed.statusCode, 200, changed.body);
      t.match(changed.json(), { billCycleDay: 15, timeZone: "Europe/Berlin", nextBillDate: "2026-04-15" });
      t.notOk("pendingBillCycle" in changed.json(), "nothing waits");
      const zoned = (await patch({ timeZone: "America/New_York", billCycleDay: 31 })).json();
      t.match(zoned, { billCycleDay: 31, timeZone: "America/New_York", nextBillDate: "2026-03-31" });
      t.same(
        await engine.sql("select previous_bill_cycle_day, previous_time_zone, cycle_changed_at from billing_accounts"),
        [{ previous_bill_cycle_day: null, previous_time_zone: null, cycle_changed_at: null }],
        "no transition period, no history",
      );
      expectError(t, await patch({ billCycleDay: 0 }), 400, "invalid_field", "billCycleDay");
      expectError(t, await patch({ billCycleDay: null }), 400, "invalid_field", "billCycleDay");
      expectError(t, await patch({ timeZone: "Mars/Olympus" }), 400, "invalid_field", "timeZone");
      expectError(t, await patch({ timeZone: "+01:00" }), 400, "invalid_field", "timeZone");
      t.equal(
        (await engine.request("GET", account.href)).json().timeZone,
        "America/New_York",
        "refusals change nothing",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] with a live line a change of bill cycle waits for the period boundary`, async (t) => {
      const engine = await startEngine(t, { driver });
      const { accountId } = await orderReadyAccount(engine);
      await activateLine(engine, accountId);
      const href = `${BA}/${accountId}`;
      const patch = (body: object) => engine.request("PATCH", href, { body });
      const stored = async () =>
        (
          await engine.sql<Record<string, unknown>>(
            `select bill_cycle_day, time_zone, previous_bill_cycle_day, previous_time_zone,
             to_char(cycle_changed_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') as changed_at
           from billing_accounts where id = $1`,
            [accountId],
          )
        )[0];

      // 15 March: day 1 → 15 takes effect when March's period ends, at midnight of 1 April in Berlin.
      const pending = await patch({ billCycleDay: 15 });
      t.equal(pending.statusCode, 200, pending.body);
      t.match(pending.json(), {
        billCycleDay: 1,
        timeZone: "Europe/Berlin",
        nextBillDate: "2026-04-01",
        pendingBillCycle: { billCycleDay: 15, timeZone: "Europe/Berlin", effectiveDate: "2026-04-01" },
      });
      t.same(await stored(), {
        bill_cycle_day: 15,
        time_zone: "Europe/Berlin",
        previous_bill_cycle_day: 1,
        previous_time_zone: "Europe/Berlin",
        changed_at: "2026-03-31T22:00Z",
      });
      const replaced = await patch({ billCycleDay: 20, timeZone: "Europe/Lisbon" });
      t.match(replaced.json(), {
        billCycleDay: 1,
        pendingBillCycle: { billCycleDay: 20, timeZone: "Europe/Lisbon", effectiveDate: "2026-04-01" },
      });
      t.match(await stored(), { previous_bill_cycle_day: 1, changed_at: "2026-03-31T22:00Z" }, "the boundary stays");
      const untouched = await patch({ name: "Renamed" });
      t.match(untouched.json().pendingBillCycle, { billCycleDay: 20 }, "a patch of something else keeps the change");
      const cancelled = await patch({ billCycleDay: 1, timeZone: "Europe/Berlin" });
      t.notOk("pendingBillCycle" in cancelled.json(), "asking for the cycle in effect cancels the change");
      t.match(await stored(), { bill_cycle_day: 1, previous_bill_cycle_day: null, changed_at: null });
      t.match((await patch({ billCycleDay: 15 })).json().pendingBillCycle, { effectiveDate: "2026-04-01" });

      // In the transition period (1–15 April) the new cycle is in effect; its bill is cut on the 15th.
      engine.clock.set("2026-04-05T10:00:00Z");
      const transition = (await engine.request("GET", href)).json();
      t.match(transition, { billCycleDay: 15, timeZone: "Europe/Berlin", nextBillDate: "2026-04-15" });
      t.notOk("pendingBillCycle" in transition);
      // One change back is remembered: another waits until the transition period ended 90 days ago (14 July).
      const refused = await patch({ billCycleDay: 20 });
      expectError(t, refused, 409, "bill_cycle_change_too_soon", "billCycleDay");
      t.match(refused.json().message, /2026-04-01.*2026-07-14/);
      engine.clock.set("2026-04-20T10:00:00Z");
      t.equal((await engine.request("GET", href)).json().nextBillDate, "2026-05-15");
      engine.clock.set("2026-07-13T21:00:00Z");
      expectError(t, await patch({ timeZone: "Europe/Paris" }), 409, "bill_cycle_change_too_soon", "timeZone");
      engine.clock.set("2026-07-13T22:00:00Z"); // midnight of 14 July in Berlin
      const later = await patch({ billCycleDay: 20 });
      t.equal(later.statusCode, 200, later.body);
      t.match(later.json(), {
        billCycleDay: 15,
        nextBillDate: "2026-07-15",
        pendingBillCycle: { billCycleDay: 20, timeZone: "Europe/Berlin", effectiveDate: "2026-07-15" },
      });
      t.match(await stored(), { previous_bill_cycle_day: 15, changed_at: "2026-07-14T22:00Z" });
    });

  if (everyCase(driver))
    t.test(`[${driver}] a business account carries a VAT ID, checked by format`, async (t) => {
      const engine = await startEngine(t, { driver });
      const organization = await engine.request("POST", ORG, { body: { tradingName: "Acme GmbH" } });
      const business = (overrides: object) =>
        engine.request("POST", BA, {
          body: {
            name: "Acme",
            relatedParty: [{ id: organization.json().id, "@referredType": "Organization" }],
            ...overrides,
          },
        });
      expectError(t, await business({ vatId: "DE12345678" }), 400, "invalid_field", "vatId");
      expectError(t, await business({ vatId: "de123456789" }), 400, "invalid_field", "vatId");
      expectError(t, await business({ vatId: "GR123456789" }), 400, "invalid_field", "vatId");
      const created = await business({ vatId: "DE123456789" });
      t.equal(created.statusCode, 201, created.body);
      t.equal(created.json().vatId, "DE123456789");
      const href = created.json().href;
      t.same(await engine.app.services.customers.accountForBilling(engine.app.database.db, created.json().id), {
        id: created.json().id,
        customerId: created.json().relatedParty[0].id,
        accountType: "postpaid",
        currency: "EUR",
        cycle: { billCycleDay: 1, timeZone: "UTC", previous: null },
        taxJurisdiction: "DE",
        paymentTermsDays: 14,
        vatId: "DE123456789",
        isOrganization: true,
        state: "active",
      });
      const changed = await engine.request("PATCH", href, {
        body: { vatId: "FRXX123456789" },
        headers: { "content-type": "application/merge-patch+json" },
      });
      t.equal(changed.json().vatId, "FRXX123456789");
      expectError(t, await engine.request("PATCH", href, { body: { vatId: "FR123" } }), 400, "invalid_field", "vatId");
      const removed = await engine.request("PATCH", href, { body: { vatId: null } });
      t.equal(removed.statusCode, 200, removed.body);
      t.notOk("vatId" in removed.json(), "null removes it (merge patch)");
      t.same(await engine.sql("select vat_id from billing_accounts where id = $1", [created.json().id]), [
        { vat_id: null },
      ]);

      // An individual's account has no VAT ID.
      const personal = await createBillingAccount(engine);
      expectError(
        t,
        await engine.request("PATCH", personal.href, { body: { vatId: "DE123456789" } }),
        422,
        "vat_id_not_applicable",
        "vatId",
      );
      expectError(
        t,
        await engine.request("POST", BA, { body: billingAccountBody(personal.customerId, { vatId: "DE123456789" }) }),
        422,
        "vat_id_not_applicable",
        "vatId",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] closing: a customer with open accounts cannot close; accounts are never deleted`, async (t) => {
      const engine = await startEngine(t, { driver });
      const account = await createBillingAccount(engine);
      const customerUrl = `${CUS}/${account.customerId}`;
      expectError(
        t,
        await engine.request("PATCH", customerUrl, { body: { status: "closed" } }),
        409,
        "customer_has_open_accounts",
      );
      expectError(t, await engine.request("DELETE", customerUrl), 409, "customer_has_accounts");
      t.equal((await engine.request("DELETE", account.href)).statusCode, 404, "no DELETE route for billing accounts");
      t.equal((await engine.request("PATCH", account.href, { body: { state: "closed" } })).json().state, "closed");
      const closed = await engine.request("PATCH", customerUrl, { body: { status: "closed" } });
      t.equal(closed.json().status, "closed");
      t.same(
        closed.json().account.map((ref: { id: string }) => ref.id),
        [account.id],
      );
      expectError(
        t,
        await engine.request("POST", BA, { body: billingAccountBody(account.customerId) }),
        422,
        "customer_closed",
      );
    });

  if (everyCase(driver))
    t.test(`[${driver}] a subscriber key sees its own account and nothing else`, async (t) => {
      const engine = await startEngine(t, { driver });
      const mine = await createBillingAccount(engine);
      const theirs = await createBillingAccount(engine);
      const key = await engine.subscriberKey(mine.id);

      const own = await engine.request("GET", mine.href, { key });
      t.equal(own.statusCode, 200);
      t.equal(own.json().id, mine.id);
      expectError(t, await engine.request("GET", theirs.href, { key }), 404, "not_found");
      const list = await engine.request("GET", BA, { key });
      t.same(
        list.json().map((account: { id: string }) => account.id),
        [mine.id],
      );
      t.equal(list.headers["x-total-count"], "1");
      expectError(
        t,
        await engine.request("PATCH", mine.href, { key, body: { name: "mine now" } }),
        403,
        "role_not_allowed",
      );
      expectError(t, await engine.request("GET", `${CUS}/${mine.customerId}`, { key }), 403, "role_not_allowed");
      const staffList = await engine.request("GET", BA, { key: engine.keys.crm });
      t.equal(staffList.headers["x-total-count"], "2", "staff see every account");
    });

  if (everyCase(driver))
    t.test(`[${driver}] concurrent patches of one account serialize under the row lock`, async (t) => {
      const engine = await startEngine(t, { driver });
      const account = await createBillingAccount(engine);
      const values = [110, 120, 130, 140, 150, 160];
      const responses = await Promise.all(
        values.map((value) => engine.request("PATCH", account.href, { body: { creditLimit: { unit: "EUR", value } } })),
      );
      t.same(
        responses.map((response) => response.statusCode),
        values.map(() => 200),
      );
      const audit = await engine.sql<{
        before: { creditLimit: { value: number } };
        after: { creditLimit: { value: number } };
      }>("select before, after from audit_log where entity_id = $1 and action = 'update' order by id", [account.id]);
      t.equal(audit.length, values.length);
      // Each change starts from the value the previous one wrote: no update was lost.
      for (let i = 1; i < audit.length; i++) {
        t.equal(
          audit[i]?.before.creditLimit.value,
          audit[i - 1]?.after.creditLimit.value,
          `change ${i} saw change ${i - 1}`,
        );
      }
      const final = (await engine.request("GET", account.href)).json().creditLimit.value;
      t.equal(final, audit[audit.length - 1]?.after.creditLimit.value);
    });
}

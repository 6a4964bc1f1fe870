import t from "tap";
import { drivers, expectError, startEngine } from "../support/engine.js";
import { billingAccountBody, createBillingAccount, createCustomer, createIndividual } from "../support/fixtures.js";

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

  t.test(`[${driver}] the bill cycle day is clamped to the month's last day in the account's zone`, async (t) => {
    const engine = await startEngine(t, { driver });
    const account = await createBillingAccount(engine, { billCycleDay: 31, timeZone: "Pacific/Auckland" });
    const nextBill = async (at: string) => {
      engine.clock.set(at);
      return (await engine.request("GET", account.href)).json().nextBillDate;
    };
    t.equal(await nextBill("2027-02-10T00:00:00Z"), "2027-02-28", "February has 28 days in 2027");
    t.equal(await nextBill("2028-02-10T00:00:00Z"), "2028-02-29", "and 29 in 2028");
    t.equal(await nextBill("2027-04-30T09:00:00Z"), "2027-04-30", "April's last day is its bill day");
    // 30 April 13:00 UTC is already 1 May in Auckland: the next bill is May's.
    t.equal(await nextBill("2027-04-30T13:00:00Z"), "2027-05-31", "the account's zone decides the date");
  });

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

import t, { type Test } from "tap";
import { ManualClock } from "../../src/platform/clock.js";
import { camt053, hasXmllint, type StatementEntrySpec, schemaProblems } from "../support/bank-files.js";
import { drivers, type Engine, everyCase, expectError, startEngine } from "../support/engine.js";
import { activateLine, createBillingAccount, orderReadyAccount } from "../support/fixtures.js";

/**
 * The banks' own files (issue 27): SEPA mandates and a pain.008 file valid against the ISO 20022 schema whose totals
 * are the bills'; debits collected on their date; a camt.053 statement with matched, unmatched, ambiguous, duplicate
 * and returned entries imported twice with one outcome; the worklist; bad files and bad mandates changing nothing.
 */

const BILLS = "/tmf-api/customerBillManagement/v4/customerBill";
const PAYMENTS = "/tmf-api/paymentManagement/v4/payment";
const DEBITS = "/api/v1/payments/direct-debits";
const STATEMENTS = "/api/v1/payments/statements";
const UNMATCHED = "/api/v1/payments/unmatched";
const mandatesOf = (accountId: string) => `/api/v1/billing-accounts/${accountId}/mandates`;
const issuePath = (accountId: string) => `/api/v1/billing/accounts/${accountId}/invoices`;

type Bill = { id: string; billNo: string; paymentReference: string; amountDue: { value: number }; state: string };
type Entry = { bankReference: string; outcome: string; detail?: string; payment?: { id: string }; id: string };

/** German postpaid accounts (four unless asked; a Postpaid M line each from 17 March 2027), billed on 1 April 2027. */
async function billedAccounts(t: Test, driver: Engine["driver"], count = 4) {
  const clock = new ManualClock("2027-03-17T09:00:00Z");
  const engine = await startEngine(t, { clock, driver });
  const first = await orderReadyAccount(engine);
  const accounts = [first.accountId];
  for (let index = 1; index < count; index += 1) accounts.push((await createBillingAccount(engine)).id);
  for (const accountId of accounts) await activateLine(engine, accountId);
  clock.set("2027-04-01T08:00:00Z");
  const bills: Bill[] = [];
  for (const accountId of accounts) {
    const issued = await engine.request("POST", issuePath(accountId), { key: engine.keys.finance });
    if (issued.statusCode !== 201) throw new Error(issued.body);
    bills.push((await engine.request("GET", `${BILLS}/${issued.json().id}`)).json() as Bill);
  }
  return { engine, clock, accounts, bills };
}

function xmlRequest(xml: string) {
  return { rawBody: xml, headers: { "content-type": "application/xml" } };
}

async function bill(engine: Engine, id: string) {
  return (await engine.request("GET", `${BILLS}/${id}`)).json() as Bill & { remainingAmount: { value: number } };
}

for (const driver of drivers) {
  t.test(`${driver}: direct debits collect the open bills; a statement matches, returns and dedupes`, async (t) => {
    const { engine, clock, accounts, bills } = await billedAccounts(t, driver);
    const [a, b, c] = accounts as [string, string, string];
    const [billA, billB, billC, billD] = bills as [Bill, Bill, Bill, Bill];
    const finance = engine.keys.finance;

    // Mandates: A signed last month (its first debit is FRST); B used before (RCUR); C signed in 2023 and never
    // used, lapsed after 36 months; D has none.
    const mandate = async (accountId: string, reference: string, signatureDate: string, iban: string) => {
      const created = await engine.request("POST", mandatesOf(accountId), {
        body: { reference, signatureDate, debtorName: "Ada Lovelace", iban, bic: "COBADEFFXXX" },
      });
      t.equal(created.statusCode, 201, created.body);
      return created.json() as { id: string; status: string; sequence: string; iban: string };
    };
    const mandateA = await mandate(a, "MANDATE-A", "2027-03-01", "DE02120300000000202051");
    t.match(mandateA, { status: "active", sequence: "first", iban: "DE02**************2051" });
    await mandate(b, "MANDATE-B", "2025-06-01", "DE02500105170137075030");
    // B's mandate as an earlier file left it (used, recurring): the file below must say RCUR.
    await engine.sql(
      "update mandates set sequence = 'recurring', last_collection_date = '2027-03-15' where reference = 'MANDATE-B'",
    );
    const mandateC = await mandate(c, "MANDATE-C", "2023-01-10", "DE12500105170648489890");
    t.equal(mandateC.status, "lapsed", "unused for 36 months");

    // The collection date must leave the debtors their pre-notification period (14 days).
    expectError(
      t,
      await engine.request("POST", DEBITS, { key: finance, body: { collectionDate: "2027-04-10" } }),
      422,
      "prenotification_period",
      "collectionDate",
    );
    expectError(
      t,
      await engine.request("POST", DEBITS, { key: finance, body: { collectionDate: "2027-02-30" } }),
      400,
      "invalid_field",
      "collectionDate",
    );
    t.equal(await engine.count("payments"), 0, "refused requests wrote nothing");

    const built = await engine.request("POST", DEBITS, {
      key: finance,
      headers: { "idempotency-key": "dd-2027-04" },
      body: { collectionDate: "2027-04-15" },
    });
    t.equal(built.statusCode, 201, built.body);
    const file = built.json() as {
      id: string;
      transactions: number;
      controlSum: { value: string };
      skipped: Array<{ billId: string; reason: string }>;
      sha256: string;
    };
    t.equal(file.transactions, 2, "A and B; C's mandate lapsed, D has none");
    const expected = (billA.amountDue.value * 100 + billB.amountDue.value * 100) / 100;
    t.equal(file.controlSum.value, expected.toFixed(2), "the control sum is the two bills'");
    t.match(file.skipped, [{ billId: billC.id, reason: /MANDATE-C lapsed/ }]);
    const replay = await engine.request("POST", DEBITS, {
      key: finance,
      headers: { "idempotency-key": "dd-2027-04" },
      body: { collectionDate: "2027-04-15" },
    });
    t.equal(replay.statusCode, 200, "the same key answers the same file");
    t.equal(replay.json().id, file.id);

    const download = await engine.request("GET", `${DEBITS}/${file.id}/file`, { key: finance });
    t.equal(download.statusCode, 200);
    t.match(download.headers["content-type"], /application\/xml/);
    const xml = download.body;
    if (hasXmllint()) t.equal(schemaProblems(xml, "pain.008.001.02.xsd"), null, "valid pain.008.001.02");
    else if (process.env.CI === "true") t.fail("xmllint is missing on CI (.ci/run installs libxml2-utils)");
    else t.comment("xmllint not installed: schema validation skipped (apt install libxml2-utils)");
    t.match(xml, /<NbOfTxs>2<\/NbOfTxs>/);
    t.match(xml, new RegExp(`<CtrlSum>${expected.toFixed(2)}</CtrlSum>`));
    t.match(xml, /<SeqTp>FRST<\/SeqTp>[\s\S]*<MndtId>MANDATE-A<\/MndtId>/);
    t.match(xml, /<SeqTp>RCUR<\/SeqTp>[\s\S]*<MndtId>MANDATE-B<\/MndtId>/);
    t.match(xml, /<Id>DE98ZZZ09999999999<\/Id>/, "the issuing entity's creditor identifier");
    t.match(xml, new RegExp(`<Ref>${billA.paymentReference}</Ref>`), "the bill's payment reference");
    t.notMatch(xml, /MANDATE-C/);
    const again = await engine.request("GET", `${DEBITS}/${file.id}/file`, { key: finance });
    t.equal(again.body, xml, "the same bytes on every download");

    // Each debit is a pending payment; the bills stay open, and not overdue (a pending debit).
    const pending = (await engine.request("GET", PAYMENTS, { key: finance, query: { status: "pending" } })).json();
    t.equal(pending.length, 2, JSON.stringify(pending));
    t.notOk(["settled", "partiallyPaid"].includes((await bill(engine, billA.id)).state), "nothing allocated yet");
    const held = await engine.app.services.directDebits.pendingDebitBills(engine.app.database.db, [
      billA.id,
      billB.id,
      billC.id,
    ]);
    t.same([...held].sort(), [billA.id, billB.id].sort());
    expectError(
      t,
      await engine.request("POST", DEBITS, { key: finance, body: { collectionDate: "2027-04-16" } }),
      422,
      "nothing_to_collect",
      "collectionDate",
    );
    t.equal((await engine.request("GET", mandatesOf(a))).json()[0].sequence, "recurring", "the next debit is RCUR");

    // The collection date: the scheduled job collects them and the bills are settled.
    clock.set("2027-04-15T06:00:00Z");
    t.same(await engine.app.services.directDebits.collectDue(clock.now()), { collected: 2 });
    t.equal((await bill(engine, billA.id)).state, "settled");
    t.equal((await bill(engine, billB.id)).state, "settled");
    const debits = await engine.sql<{ id: string; end_to_end_id: string; billing_account_id: string }>(
      "select id, end_to_end_id, billing_account_id from direct_debits",
    );
    const e2e = (accountId: string) => debits.find((row) => row.billing_account_id === accountId)?.end_to_end_id ?? "";

    // The statement: A's collection booked, B's debit returned (insufficient funds), D paid with its reference,
    // a credit nobody can place, one naming bills of two accounts, a repeat of D's entry, C paid from its IBAN,
    // a pending entry.
    clock.set("2027-04-20T08:00:00Z");
    const entries: StatementEntrySpec[] = [
      { ref: "BK-1", amount: billA.amountDue.value.toFixed(2), endToEndId: e2e(a), bankCode: ["PMNT", "IDDT", "ESDD"] },
      {
        ref: "BK-2",
        amount: billB.amountDue.value.toFixed(2),
        direction: "DBIT",
        endToEndId: e2e(b),
        returnReason: "AM04",
      },
      { ref: "BK-3", amount: billD.amountDue.value.toFixed(2), creditorRef: billD.paymentReference, debtorName: "D" },
      { ref: "BK-4", amount: "17.00", remittance: "thank you", debtorIban: "FR1420041010050500013M02606" },
      { ref: "BK-5", amount: "10.00", remittance: `bills ${billA.billNo} and ${billC.billNo}` },
      { ref: "BK-3", amount: billD.amountDue.value.toFixed(2), creditorRef: billD.paymentReference },
      { ref: "BK-6", amount: billC.amountDue.value.toFixed(2), debtorIban: "DE12500105170648489890" },
      { ref: "BK-7", amount: "5.00", status: "PDNG", remittance: billA.billNo },
    ];
    const statementXml = camt053({ messageId: "STMT-2027-04-20", entries });
    if (hasXmllint())
      t.equal(schemaProblems(statementXml, "camt.053.001.08.xsd"), null, "the sample is valid camt.053");
    const imported = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(statementXml) });
    t.equal(imported.statusCode, 201, imported.body);
    const answer = imported.json() as { id: string; outcomes: Record<string, number>; items: Entry[] };
    t.same(
      answer.items.map((entry) => [entry.bankReference, entry.outcome]),
      [
        ["BK-1", "collected"],
        ["BK-2", "returned"],
        ["BK-3", "matched"],
        ["BK-4", "unmatched"],
        ["BK-5", "ambiguous"],
        ["BK-3", "duplicate"],
        ["BK-6", "matched"],
        ["BK-7", "ignored"],
      ],
      "every entry's outcome",
    );
    t.same(answer.outcomes, {
      collected: 1,
      returned: 1,
      matched: 2,
      unmatched: 1,
      ambiguous: 1,
      duplicate: 1,
      ignored: 1,
    });
    t.notOk(
      ["settled", "partiallyPaid"].includes((await bill(engine, billB.id)).state),
      "the returned debit's bill reopens",
    );
    t.equal((await bill(engine, billD.id)).state, "settled", "matched by the payment reference");
    t.equal((await bill(engine, billC.id)).state, "settled", "matched by the IBAN on file and the amount");
    const returned = (
      await engine.request("GET", `${PAYMENTS}/${debits.find((row) => row.billing_account_id === b)?.id}`)
    ).json();
    t.match(returned, { status: "reversed", reversal: { reasonCode: "AM04" } });
    t.equal(await engine.count("one_time_charges", "source = 'reversal'"), 1, "the catalog's reversal fee");
    const paymentsAfterFirst = await engine.count("payments");
    const states = async () => Promise.all(bills.map(async (one) => (await bill(engine, one.id)).state));
    const statesAfterFirst = await states();

    // The same statement again: every entry a duplicate, nothing applied twice.
    const twice = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(statementXml) });
    t.equal(twice.statusCode, 201, twice.body);
    t.same(twice.json().outcomes, { duplicate: 8 });
    t.equal(await engine.count("payments"), paymentsAfterFirst, "no payment twice");
    t.same(await states(), statesAfterFirst, "no bill moved");
    t.equal(await engine.count("one_time_charges", "source = 'reversal'"), 1, "no second fee");

    // The worklist: the unmatched and the ambiguous credit; finance assigns one, once.
    const worklist = (await engine.request("GET", UNMATCHED, { key: finance })).json() as Entry[];
    t.same(worklist.map((entry) => entry.bankReference).sort(), ["BK-4", "BK-5"]);
    const toAssign = worklist.find((entry) => entry.bankReference === "BK-5") as Entry;
    const assigned = await engine.request("POST", `${UNMATCHED}/${toAssign.id}/assign`, {
      key: finance,
      body: { bill: { id: billB.id } },
    });
    t.equal(assigned.statusCode, 200, assigned.body);
    t.match(assigned.json(), { outcome: "assigned", payment: { id: /./ } });
    const payment = (await engine.request("GET", `${PAYMENTS}/${assigned.json().payment.id}`)).json();
    t.match(payment, { totalAmount: { value: 10 }, paymentItem: [{ item: { id: billB.id } }] });
    expectError(
      t,
      await engine.request("POST", `${UNMATCHED}/${toAssign.id}/assign`, {
        key: finance,
        body: { bill: { id: billB.id } },
      }),
      409,
      "not_waiting",
    );
    t.equal((await engine.request("GET", UNMATCHED, { key: finance })).json().length, 1);

    // A return after the 8 weeks an authorised debit may come back: the bank took the money back all the same, so it
    // is reversed, and said so for finance to dispute.
    const late = camt053({
      messageId: "STMT-LATE",
      entries: [
        {
          ref: "BK-9",
          amount: billA.amountDue.value.toFixed(2),
          direction: "DBIT",
          endToEndId: e2e(a),
          returnReason: "MD06",
          bookingDate: "2027-07-01",
        },
      ],
    });
    const lateAnswer = (await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(late) })).json();
    t.match(lateAnswer.items, [{ outcome: "returned", detail: /MD06 .*after the 8 weeks .* dispute with the bank/ }]);
    t.notOk(
      ["settled", "partiallyPaid"].includes((await bill(engine, billA.id)).state),
      "the money went back: A reopens",
    );
    // A debit not yet collected is not reversed by hand: the bank's statement says what became of it.
    const later = await engine.request("POST", DEBITS, { key: finance, body: { collectionDate: "2027-07-20" } });
    t.equal(later.statusCode, 201, later.body);
    const [pendingDebit] = (
      await engine.request("GET", PAYMENTS, { key: finance, query: { status: "pending" } })
    ).json();
    expectError(
      t,
      await engine.request("POST", `/api/v1/payments/${pendingDebit.id}/reversal`, {
        key: finance,
        body: { reasonCode: "AM04" },
      }),
      409,
      "payment_pending",
    );
  });
  if (!everyCase(driver)) continue;

  t.test(`${driver}: bad files and bad mandates change nothing`, async (t) => {
    const { engine, accounts, bills } = await billedAccounts(t, driver, 2);
    const finance = engine.keys.finance;
    const [a] = accounts as [string];
    const [billA] = bills as [Bill];
    const good = camt053({ entries: [{ ref: "OK-1", amount: "1.00", creditorRef: billA.paymentReference }] });
    const counts = async () => [
      await engine.count("payments"),
      await engine.count("statement_entries"),
      await engine.count("allocations"),
    ];
    const before = await counts();
    const refused = async (xml: string, pattern: RegExp) => {
      const answer = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(xml) });
      expectError(t, answer, 400, "invalid_statement", "statement");
      t.match(answer.json().message, pattern);
    };
    // Truncated after the first entry closed: nothing of it is applied or stays staged.
    await refused(good.slice(0, good.indexOf("</Stmt>")), /not well-formed|unclosed|line/i);
    await refused("<Document><BkToCstmrStmt/>", /not a camt.053 Document/);
    await refused(good.replace("camt.053.001.08", "camt.052.001.08"), /not a camt.053 Document/);
    await refused(
      good.replace("<BookgDt><Dt>2026-12-01</Dt>", "<BookgDt><Dt>2026-13-01</Dt>"),
      /BookgDt .* is not a date/,
    );
    await refused(good.replace(/<AcctSvcrRef>OK-1<\/AcctSvcrRef>/g, ""), /neither AcctSvcrRef nor NtryRef/);
    await refused(good.replace(">1.00<", ">-1.00<"), /not a positive decimal/);
    await refused(camt053({ entries: [] }), /no entries/);
    await refused("this is not xml", /not well-formed|not a camt/);
    await refused(good.replace(/OK-1/g, "R".repeat(36)), /AcctSvcrRef is longer than 35 characters/);
    await refused(good.replace("<NtryDtls>", `${"<a>".repeat(50)}<NtryDtls>`), /nested deeper than 40/);
    t.same(await counts(), before, "no payment, entry or allocation from a refused file");
    t.equal(
      await engine.count("bank_statements", "status = 'rejected'"),
      10,
      "each refusal is on record with its reason",
    );
    const asJson = await engine.request("POST", STATEMENTS, { key: finance, body: { statement: good } });
    t.equal(asJson.statusCode, 415, "a statement is XML, not JSON");
    // An amount finer than the currency's cents is not matched: it waits for finance, nothing else breaks.
    const fine = await engine.request("POST", STATEMENTS, {
      key: finance,
      ...xmlRequest(
        camt053({
          messageId: "FINE",
          entries: [{ ref: "FINE-1", amount: "10.125", creditorRef: billA.paymentReference }],
        }),
      ),
    });
    t.equal(fine.statusCode, 201, fine.body);
    t.match(fine.json().items, [{ outcome: "unmatched", detail: /more decimals than EUR allows/ }]);
    const wrongType = await engine.request("POST", STATEMENTS, {
      key: finance,
      rawBody: good,
      headers: { "content-type": "text/plain" },
    });
    t.equal(wrongType.statusCode, 415);
    t.equal((await engine.request("POST", STATEMENTS, { key: engine.keys.crm, ...xmlRequest(good) })).statusCode, 403);

    const post = (body: Record<string, unknown>, accountId = a) =>
      engine.request("POST", mandatesOf(accountId), { body });
    const valid = { reference: "M-1", signatureDate: "2027-03-01", debtorName: "Ada", iban: "DE02120300000000202051" };
    expectError(t, await post({ ...valid, iban: "DE02120300000000202052" }), 400, "invalid_iban", "iban");
    expectError(t, await post({ ...valid, iban: "DE0212030000000020205" }), 400, "invalid_iban", "iban");
    const { signatureDate: _, ...unsigned } = valid;
    expectError(t, await post(unsigned), 400, "invalid_field", "signatureDate");
    expectError(t, await post({ ...valid, signatureDate: "2027-04-30" }), 422, "invalid_field", "signatureDate");
    expectError(t, await post({ ...valid, reference: "/bad//ref" }), 400, "invalid_field", "reference");
    expectError(t, await post({ ...valid, bic: "1234DEFF" }), 400, "invalid_bic", "bic");
    t.equal((await post(valid)).statusCode, 201);
    expectError(t, await post(valid), 409, "duplicate_mandate", "reference");
    const pounds = await createBillingAccount(engine, {
      currency: "GBP",
      taxJurisdiction: "GB",
      creditLimit: undefined,
    });
    expectError(t, await post({ ...valid, reference: "M-2" }, pounds.id), 422, "not_sepa");
    t.equal((await post({ ...valid, reference: "M-3" }, "00000000-0000-7000-8000-000000000000")).statusCode, 404);
    t.equal(await engine.count("mandates"), 1, "only the valid mandate");

    // A subscriber sees its own account's mandates only.
    const own = await engine.subscriberKey(a);
    t.equal((await engine.request("GET", mandatesOf(a), { key: own })).json().length, 1);
    t.equal((await engine.request("GET", mandatesOf(accounts[1] as string), { key: own })).statusCode, 404);
  });
}

t.test(
  "a statement whose import died part-way is finished by recovery, once; a cut-off upload is cleared",
  async (t) => {
    const { engine, bills } = await billedAccounts(t, drivers[0] as Engine["driver"], 2);
    const finance = engine.keys.finance;
    const [billA, billB] = bills as [Bill, Bill];
    const statements = engine.app.services.statements as unknown as {
      apply: (...args: unknown[]) => Promise<void>;
      recover(abandonedAfterMs?: number): Promise<{ resumed: number; abandoned: number }>;
    };
    const xml = camt053({
      messageId: "CRASH",
      entries: [
        { ref: "CR-1", amount: billA.amountDue.value.toFixed(2), creditorRef: billA.paymentReference },
        { ref: "CR-2", amount: billB.amountDue.value.toFixed(2), creditorRef: billB.paymentReference },
      ],
    });
    // The process dies while applying: the file was read whole and staged, nothing applied.
    const apply = statements.apply;
    statements.apply = async () => {
      throw new Error("the process died here");
    };
    const died = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(xml) });
    statements.apply = apply;
    t.equal(died.statusCode, 500);
    t.equal(await engine.count("bank_statements", "status = 'staged'"), 1);
    t.equal(await engine.count("payments"), 0);

    // The next import (or the hourly job) finishes it first: then the same file is all duplicates.
    const again = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(xml) });
    t.equal(again.statusCode, 201, again.body);
    t.same(again.json().outcomes, { duplicate: 2 });
    t.equal(await engine.count("payments"), 2, "each entry paid once");
    t.equal((await bill(engine, billA.id)).state, "settled");
    t.equal(await engine.count("bank_statements", "status = 'applied'"), 2);

    // An upload cut off by a crash (never read whole) is cleared after an hour, so the file can come again.
    const [statement] = await engine.sql<{ id: string }>(
      "insert into bank_statements (id, status, created_at) values (gen_random_uuid(), 'receiving', now() - interval '2 hours') returning id",
    );
    await engine.sql(
      `insert into statement_entries (id, statement_id, seq, account, bank_ref, direction, booking_status, amount, currency, outcome, created_at)
     values (gen_random_uuid(), $1, 1, 'DE89370400440532013000', 'CUT-1', 'CRDT', 'BOOK', 5, 'EUR', 'staged', now())`,
      [statement?.id],
    );
    t.same(await statements.recover(), { resumed: 0, abandoned: 1 });
    t.equal(await engine.count("statement_entries", "bank_ref = 'CUT-1'"), 0);
    const cut = camt053({ messageId: "CUT", entries: [{ ref: "CUT-1", amount: "5.00", remittance: "x" }] });
    const retried = await engine.request("POST", STATEMENTS, { key: finance, ...xmlRequest(cut) });
    t.same(retried.json().outcomes, { unmatched: 1 }, "not taken for a duplicate of the cut-off upload");
  },
);

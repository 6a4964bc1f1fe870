import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import t from "tap";
import { localTimeToIso, mapAsteriskRow, parseAsteriskCsv } from "../../src/modules/usage/formats/asterisk.js";
import { decodeFreeswitchBody, mapFreeswitchCdr } from "../../src/modules/usage/formats/freeswitch.js";
import type { MappedCdr, MapResult, RecordRejection } from "../../src/modules/usage/formats/mapped.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/cdrs/${name}`, import.meta.url));
const JSON_TYPE = "application/json";
const FORM_TYPE = "application/x-www-form-urlencoded";
const BASE64_TYPE = "application/x-www-form-base64-encoded";
const ANSWERED_UUID = "6f1c2a9e-3b7d-4e21-9c55-0d8e4a7b1f23";

type Json = Record<string, unknown>;

/** The decoded record of a body that must decode. */
function decoded(contentType: string | undefined, body: Buffer | string): Json {
  const result = decodeFreeswitchBody(contentType, Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8"));
  if (!result.ok) throw new Error(`expected the body to decode, got ${JSON.stringify(result.rejection)}`);
  return result.cdr as Json;
}

/** The rejection of a body that must not decode. */
function refused(contentType: string | undefined, body: Buffer | string): RecordRejection {
  const result = decodeFreeswitchBody(contentType, Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8"));
  if (result.ok) throw new Error("expected the body to be refused");
  return result.rejection;
}

function mapped(result: MapResult): MappedCdr {
  if (!result.ok) throw new Error(`expected a mapped record, got ${JSON.stringify(result.rejection)}`);
  return result.cdr;
}

function rejection(result: MapResult): RecordRejection {
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.cdr)}`);
  return result.rejection;
}

/** A fresh copy of a FreeSWITCH fixture, to change one thing in. */
function fsRecord(name: string): Json & { variables: Record<string, string> } {
  return JSON.parse(fixture(name).toString("utf8")) as Json & { variables: Record<string, string> };
}

const fromFreeswitch = (cdr: unknown) => mapFreeswitchCdr(cdr, "fs-edge-fra1");

// ---------------------------------------------------------------------------------------------------------
// FreeSWITCH mod_json_cdr
// ---------------------------------------------------------------------------------------------------------

t.test(
  "an answered A-leg posted as raw JSON (encode=false) is the subscriber's outgoing call, rated on billsec",
  async (t) => {
    const cdr = decoded(JSON_TYPE, fixture("freeswitch-answered.json"));
    t.ok(Object.keys(cdr.variables as Json).length > 100, "a realistic record carries well over a hundred variables");
    const result = mapped(fromFreeswitch(cdr));
    t.same(result.record, {
      recordType: "voice",
      cdrId: ANSWERED_UUID,
      source: "fs-edge-fra1",
      servedMSISDN: "+4915112345678",
      calledNumber: "+493012345678",
      recordOpeningTime: "2026-03-16T10:00:07.004Z",
      duration: 65,
      direction: "outgoing",
    });
    t.equal(result.chargeable, true);
    t.equal(result.note, undefined);
    t.equal((result.record as Json).duration, 65, "billsec (65), not duration (72, which includes ringing)");
  },
);

t.test(
  "the same leg form-encoded (encode=true) and base64 (encode=base64) decodes to the identical record",
  async (t) => {
    const raw = decoded(JSON_TYPE, fixture("freeswitch-answered.json"));
    const form = decoded(FORM_TYPE, fixture("freeswitch-answered.form.txt"));
    const base64 = decoded(BASE64_TYPE, fixture("freeswitch-answered.base64.txt"));
    t.same(form, raw);
    t.same(base64, raw);
    t.equal(
      (form.variables as Json).caller_id_name,
      "Alice%20M%C3%BCller",
      "variable values stay URL-encoded after the body is decoded",
    );
    t.same(
      decoded(`${FORM_TYPE}; charset=UTF-8`, fixture("freeswitch-answered.form.txt")),
      raw,
      "content type parameters are ignored",
    );
    t.same(
      decoded(FORM_TYPE, fixture("freeswitch-answered.base64.txt")),
      raw,
      "base64 under the urlencoded content type is detected",
    );
    t.same(
      decoded(undefined, fixture("freeswitch-answered.form.txt")),
      raw,
      "without a content type the body is sniffed",
    );
    t.same(decoded(undefined, fixture("freeswitch-answered.json")), raw);
  },
);

t.test("a retried post of the same leg keeps its uuid as cdrId, whatever the encoding", async (t) => {
  const ids = [
    decoded(JSON_TYPE, fixture("freeswitch-answered.json")),
    decoded(FORM_TYPE, fixture("freeswitch-answered.form.txt")),
    decoded(BASE64_TYPE, fixture("freeswitch-answered.base64.txt")),
  ].map((cdr) => mapped(fromFreeswitch(cdr)).record.cdrId);
  t.same(ids, [ANSWERED_UUID, ANSWERED_UUID, ANSWERED_UUID]);
  const other = mapped(fromFreeswitch(decoded(JSON_TYPE, fixture("freeswitch-unanswered.json"))));
  t.equal(other.record.cdrId, "c81f4b2d-7e09-4a63-b1d8-3f6a2e5c9d07", "another leg has another id");
});

t.test("base64 keeps + and / as they are, escaped or not", async (t) => {
  const cdr = fsRecord("freeswitch-outbound-leg.json");
  // Callflow values are not URL-encoded, so these characters reach the base64 and make + and / appear there.
  const profile = (cdr.callflow as Array<{ caller_profile: Json }>)[0]?.caller_profile;
  if (profile) profile.caller_id_name = "Schmidt ~~~ ??? >>>";
  const base64 = Buffer.from(JSON.stringify(cdr), "utf8").toString("base64");
  t.match(base64, /\+/, "the sample really contains a +");
  t.match(base64, /\//, "and a /");
  t.same(decoded(BASE64_TYPE, `cdr=${base64}`), cdr);
  t.same(decoded(FORM_TYPE, `cdr=${base64}`), cdr, "a + in base64 is not read as a space");
  t.same(decoded(FORM_TYPE, `cdr=${encodeURIComponent(base64)}`), cdr, "%2B, %2F and %3D are undone first");
});

t.test(
  "an unanswered A-leg is recorded, not chargeable, at its start time (FreeSWITCH 1.6 object callflow)",
  async (t) => {
    const result = mapped(fromFreeswitch(decoded(JSON_TYPE, fixture("freeswitch-unanswered.json"))));
    t.same(result.record, {
      recordType: "voice",
      cdrId: "c81f4b2d-7e09-4a63-b1d8-3f6a2e5c9d07",
      source: "fs-edge-fra1",
      servedMSISDN: "+4915112345678",
      calledNumber: "+4917612345678",
      recordOpeningTime: "2026-03-16T10:05:00.250Z",
      duration: 0,
      direction: "outgoing",
    });
    t.equal(result.chargeable, false);
    t.equal(result.note, "unanswered (NO_ANSWER)");
  },
);

t.test(
  "an outbound B-leg is the subscriber's incoming call: the callee is served, the caller is the other party",
  async (t) => {
    const result = mapped(fromFreeswitch(decoded(JSON_TYPE, fixture("freeswitch-outbound-leg.json"))));
    t.same(result.record, {
      recordType: "voice",
      cdrId: "e2b7c904-5d1f-4f8a-9a36-81c0d4e7f5b2",
      source: "fs-edge-fra1",
      servedMSISDN: "+4915198765432",
      calledNumber: "+4930555123",
      recordOpeningTime: "2026-03-16T16:30:12.771Z",
      duration: 189,
      direction: "incoming",
    });
    t.equal(result.chargeable, true);
  },
);

t.test("variable values are URL-decoded; sip: and @host are dropped, nothing else is normalized", async (t) => {
  const cdr = fsRecord("freeswitch-outbound-leg.json");
  cdr.variables.destination_number = "sip%3A%2B4915198765432%40100.64.23.77%3A5060";
  cdr.variables.caller_id_number = "030%20555%20123";
  const result = mapped(fromFreeswitch(cdr));
  t.equal(result.record.servedMSISDN, "+4915198765432", "%2B is a plus; the sip: URI is reduced to its user part");
  t.equal(result.record.calledNumber, "030 555 123", "%20 is a space, and the national format is kept for later");

  const plain = fsRecord("freeswitch-answered.json");
  plain.variables.caller_id_number = "+4915112345678";
  t.equal(
    mapped(fromFreeswitch(plain)).record.servedMSISDN,
    "+4915112345678",
    "encode-values=false: a literal + stays",
  );
});

t.test("fallbacks: callflow uuid and numbers, second-resolution epochs, channel_data direction", async (t) => {
  const cdr = fsRecord("freeswitch-answered.json");
  for (const name of ["uuid", "caller_id_number", "answer_uepoch", "direction"]) delete cdr.variables[name];
  const result = mapped(fromFreeswitch(cdr));
  t.equal(result.record.cdrId, ANSWERED_UUID, "callflow[0].caller_profile.uuid");
  t.equal(result.record.servedMSISDN, "+4915112345678", "callflow caller_id_number");
  t.equal(result.record.recordOpeningTime, "2026-03-16T10:00:07.000Z", "answer_epoch in whole seconds");
  t.equal(result.record.direction, "outgoing", "channel_data.direction");

  const bare = fsRecord("freeswitch-answered.json");
  delete bare.callflow;
  delete bare.variables.caller_id_number;
  bare.variables.sip_from_user = "%2B4915112345678";
  bare.variables.sip_to_user = "%2B493012345678";
  const fromSip = mapped(fromFreeswitch(bare)).record;
  t.same(
    [fromSip.servedMSISDN, fromSip.calledNumber],
    ["+4915112345678", "+493012345678"],
    "sip_from_user / sip_to_user",
  );
});

t.test("FreeSWITCH before 1.10 repeats the top-level callflow key; that one repetition is accepted", async (t) => {
  const cdr = fsRecord("freeswitch-unanswered.json");
  const text = JSON.stringify(cdr).replace(/}$/, `,"callflow":${JSON.stringify(cdr.callflow)}}`);
  t.match(text, /"callflow".*"callflow"/);
  t.equal(mapped(fromFreeswitch(decoded(JSON_TYPE, text))).record.cdrId, "c81f4b2d-7e09-4a63-b1d8-3f6a2e5c9d07");
  t.same(refused(JSON_TYPE, '{"variables":{"uuid":"a","billsec":"0"},"variables":{}}'), {
    field: "body",
    reason: "repeats the key variables",
  });
});

t.test("answered with billsec 0 is recorded at the answer time, not chargeable", async (t) => {
  const cdr = fsRecord("freeswitch-answered.json");
  cdr.variables.billsec = "0";
  const result = mapped(fromFreeswitch(cdr));
  t.equal(result.chargeable, false);
  t.equal(result.note, "billsec 0 (NORMAL_CLEARING)");
  t.equal(result.record.duration, 0);
  t.equal(result.record.recordOpeningTime, "2026-03-16T10:00:07.004Z");
});

t.test("malformed bodies are refused with the field and the reason, never thrown", async (t) => {
  t.match(refused(JSON_TYPE, '{"core-uuid":"0b9d6c4e","variables":{'), {
    field: "body",
    reason: /^is not valid JSON: /,
  });
  t.equal(refused(FORM_TYPE, "cdr=%7B%22core-uuid%22%3A").field, "cdr", "bad JSON inside the form field");
  t.match(refused(FORM_TYPE, "cdr=%7B%22core-uuid%22%3A").reason, /^is not valid JSON: /);

  t.same(refused(BASE64_TYPE, "cdr=eyJjb3JlLXV1aWQiOi!!"), {
    field: "cdr",
    reason: "is neither URL-encoded JSON nor base64 (encode=true or encode=base64)",
  });
  t.same(
    refused(BASE64_TYPE, "cdr=eyJ"),
    {
      field: "cdr",
      reason: "is neither URL-encoded JSON nor base64 (encode=true or encode=base64)",
    },
    "truncated base64",
  );
  t.match(refused(BASE64_TYPE, `cdr=${Buffer.from("core-uuid=1").toString("base64")}`), {
    field: "cdr",
    reason: /^is not valid JSON/,
  });
  t.same(refused(BASE64_TYPE, `cdr=${Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22]).toString("base64")}`), {
    field: "cdr",
    reason: "is base64 of bytes that are not UTF-8",
  });

  t.same(refused(JSON_TYPE, Buffer.from([0x7b, 0x22, 0x75, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])), {
    field: "body",
    reason: "is not valid UTF-8",
  });
  t.same(refused(FORM_TYPE, "cdr=%7B%22u%22%3A%22%FF%22%7D"), {
    field: "cdr",
    reason: "has a malformed %-escape or escapes bytes that are not UTF-8",
  });
  t.same(refused(FORM_TYPE, "cdr=%7B%22u%22%3A%22%G1%22%7D"), {
    field: "cdr",
    reason: "has a malformed %-escape or escapes bytes that are not UTF-8",
  });

  t.same(refused(JSON_TYPE, '{"variables":{"uuid":"a\u0000b"}}'), {
    field: "body",
    reason: "contains a NUL character",
  });
  t.same(refused(JSON_TYPE, '{"variables":{"caller_id_name":"Alice\\u0000"}}'), {
    field: "body",
    reason: "has a NUL character at variables.caller_id_name",
  });
  t.same(refused(JSON_TYPE, '{"variables":{"caller_id_name":"\\ud800"}}'), {
    field: "body",
    reason: "has a string that is not valid Unicode at variables.caller_id_name",
  });
  t.same(refused(JSON_TYPE, '{"variables":{"uuid":"a","uuid":"b"}}'), {
    field: "body",
    reason: "repeats the key variables.uuid",
  });
  t.match(refused(JSON_TYPE, '{"__proto__":{"polluted":true}}'), { field: "body", reason: /^is not valid JSON/ });

  t.same(refused(FORM_TYPE, "uuid=6f1c2a9e&foo=bar"), {
    field: "cdr",
    reason: "is missing: a mod_json_cdr form body is cdr=<record>",
  });
  t.same(refused(FORM_TYPE, "cdr=%7B%7D&cdr=%7B%7D"), { field: "cdr", reason: "appears more than once in the form" });
  t.same(refused(FORM_TYPE, "cdr="), { field: "cdr", reason: "is empty" });
  t.same(refused(JSON_TYPE, "  \n"), { field: "body", reason: "is empty" });
  t.same(refused(JSON_TYPE, "[1,2]"), { field: "body", reason: "must be a JSON object (one mod_json_cdr record)" });
  t.same(refused("text/plain", "{}"), {
    field: "body",
    reason:
      'has content type "text/plain"; mod_json_cdr sends application/json, application/x-www-form-urlencoded or application/x-www-form-base64-encoded',
  });
  t.same(refused(undefined, "hello"), {
    field: "body",
    reason: "is neither a JSON object nor a form with a cdr field",
  });
});

t.test("a malformed %-escape in a used variable names that variable; unused ones are not read", async (t) => {
  const cdr = fsRecord("freeswitch-answered.json");
  cdr.variables.caller_id_number = "%2B49151%ZZ345678";
  t.same(rejection(fromFreeswitch(cdr)), {
    field: "variables.caller_id_number",
    reason: "has a malformed %-escape (variable values are URL-encoded)",
  });
  const unused = fsRecord("freeswitch-answered.json");
  unused.variables.sip_user_agent = "Yealink%ZZ";
  t.ok(fromFreeswitch(unused).ok, "a broken value nobody reads does not reject the leg");
  const nul = fsRecord("freeswitch-answered.json");
  nul.variables.caller_id_number = "%2B4915112345678%00";
  t.same(rejection(fromFreeswitch(nul)), { field: "variables.caller_id_number", reason: "contains a NUL character" });
});

t.test("records missing or garbling what rating needs are rejected naming the variable", async (t) => {
  const withVariables = (change: (vars: Record<string, string>) => void) => {
    const cdr = fsRecord("freeswitch-answered.json");
    change(cdr.variables);
    return rejection(fromFreeswitch(cdr));
  };
  const noUuid = fsRecord("freeswitch-answered.json");
  delete noUuid.variables.uuid;
  delete noUuid.callflow;
  t.same(rejection(fromFreeswitch(noUuid)), {
    field: "variables.uuid",
    reason: "is missing: the call leg's uuid is its idempotency key",
  });
  t.same(
    withVariables((v) => {
      v.billsec = "65.5";
    }),
    { field: "variables.billsec", reason: 'must be a non-negative whole number of seconds, got "65.5"' },
  );
  t.same(
    withVariables((v) => {
      v.billsec = "-65";
    }),
    { field: "variables.billsec", reason: 'must be a non-negative whole number of seconds, got "-65"' },
  );
  t.same(
    withVariables((v) => {
      delete v.billsec;
    }),
    { field: "variables.billsec", reason: "is missing" },
  );
  t.same(
    withVariables((v) => {
      v.start_uepoch = "yesterday";
    }),
    { field: "variables.start_uepoch", reason: 'must be microseconds since the epoch, got "yesterday"' },
  );
  t.same(
    withVariables((v) => {
      delete v.start_uepoch;
      delete v.start_epoch;
    }),
    { field: "variables.start_epoch", reason: "is missing: the leg has no start time" },
  );
  t.same(
    withVariables((v) => {
      delete v.start_uepoch;
      v.start_epoch = "1773655";
    }),
    { field: "variables.start_epoch", reason: "is not a plausible time (before 2000 or after 2099)" },
  );
  t.same(
    withVariables((v) => {
      v.answer_uepoch = "1773655207004123.5";
    }),
    { field: "variables.answer_uepoch", reason: 'must be microseconds since the epoch, got "1773655207004123.5"' },
  );
  t.same(
    withVariables((v) => {
      v.direction = "sideways";
    }),
    { field: "variables.direction", reason: 'must be "inbound" or "outbound", got "sideways"' },
  );
  const noCaller = fsRecord("freeswitch-answered.json");
  delete noCaller.callflow;
  for (const name of ["caller_id_number", "sip_from_user"]) delete noCaller.variables[name];
  t.same(rejection(fromFreeswitch(noCaller)), {
    field: "variables.caller_id_number",
    reason: "is missing, and so are callflow caller_id_number, ani and sip_from_user",
  });
  const noCallee = fsRecord("freeswitch-answered.json");
  delete noCallee.callflow;
  delete noCallee.variables.sip_to_user;
  t.same(rejection(fromFreeswitch(noCallee)), {
    field: "variables.destination_number",
    reason: "is missing, and so are callflow destination_number and sip_to_user",
  });
  t.same(rejection(fromFreeswitch({ "core-uuid": "x" })), {
    field: "variables",
    reason: "is missing or not an object",
  });
  t.same(rejection(fromFreeswitch([])), { field: "body", reason: "a mod_json_cdr record must be a JSON object" });
});

// ---------------------------------------------------------------------------------------------------------
// Asterisk cdr_csv Master.csv
// ---------------------------------------------------------------------------------------------------------

const BERLIN = "Europe/Berlin";

function rowsOf(name: string): string[][] {
  return parseAsteriskCsv(fixture(name).toString("utf8")).map((row) => {
    if (!("cells" in row)) throw new Error(`line ${row.line}: ${row.rejection.reason}`);
    return row.cells;
  });
}

function asteriskRow(overrides: Partial<Record<number, string>> = {}, length = 18): string[] {
  const base = [
    "",
    "+4915112345678",
    "+493012345678",
    "from-subscribers",
    '"Alice" <+4915112345678>',
    "PJSIP/sub-00000050",
    "PJSIP/carrier-de-00000051",
    "Dial",
    "PJSIP/+493012345678@carrier-de,60",
    "2026-03-16 11:00:00",
    "2026-03-16 11:00:07",
    "2026-03-16 11:01:12",
    "72",
    "65",
    "ANSWERED",
    "BILLING",
    "1773655200.64",
    "",
  ].slice(0, length);
  for (const [index, value] of Object.entries(overrides)) base[Number(index)] = value ?? "";
  return base;
}
const START = 9;
const ANSWER = 10;
const BILLSEC = 13;

t.test("Master.csv: quoted cells with doubled quotes and commas, bare integers, empty unquoted answer", async (t) => {
  const rows = rowsOf("asterisk-master.csv");
  t.equal(rows.length, 7);
  t.same(
    rows.map((cells) => cells.length),
    [18, 18, 18, 18, 18, 18, 18],
  );
  const [first, noAnswer] = rows;
  t.equal(first?.[4], '"Müller, Alice" <+4915112345678>', "clid: doubled quotes undone, comma kept inside");
  t.equal(first?.[8], "PJSIP/+493012345678@carrier-de,60,tT", "lastdata commas stay inside the cell");
  t.same(first?.slice(12, 14), ["72", "65"]);
  t.equal(noAnswer?.[ANSWER], "", "no answer time is an empty cell");
  t.equal(rows[6]?.[17], 'campaign="spring", ref=7', "userfield with quotes and a comma");
});

t.test("Master.csv rows map with uniqueid as cdrId and times in the source's zone", async (t) => {
  const rows = rowsOf("asterisk-master.csv").map((cells) => mapAsteriskRow(cells, "pbx-berlin", BERLIN));
  const answered = mapped(rows[0] as MapResult);
  t.same(answered.record, {
    recordType: "voice",
    cdrId: "1773655200.42/PJSIP/carrier-de-0000002b",
    source: "pbx-berlin",
    servedMSISDN: "+4915112345678",
    calledNumber: "+493012345678",
    recordOpeningTime: "2026-03-16T11:00:07+01:00",
    duration: 65,
    direction: "outgoing",
  });
  t.equal(answered.chargeable, true);
  t.equal(answered.note, undefined);

  const summary = rows.map((result) => {
    const cdr = mapped(result);
    const uniqueid = String(cdr.record.cdrId).split("/")[0];
    return [uniqueid, cdr.record.recordOpeningTime, cdr.record.duration, cdr.chargeable, cdr.note ?? null];
  });
  t.same(summary, [
    ["1773655200.42", "2026-03-16T11:00:07+01:00", 65, true, null],
    ["1773655500.44", "2026-03-16T11:05:00+01:00", 0, false, "NO ANSWER"],
    ["1773666760.46", "2026-03-16T14:12:40+01:00", 0, false, "BUSY"],
    ["1773667200.48", "2026-03-16T14:20:00+01:00", 0, false, "FAILED"],
    ["1773669600.50", "2026-03-16T15:00:04+01:00", 0, false, "billsec 0"],
    ["1773675910.52", "2026-03-16T16:45:10+01:00", 0, false, "CONGESTION"],
    ["1773687510.54", "2026-03-16T19:58:41+01:00", 1341, true, null],
  ]);
});

t.test("without uniqueid the key is a hash of the row: same row, same key; any difference, another key", async (t) => {
  const parsed = parseAsteriskCsv(fixture("asterisk-master-no-uniqueid.csv").toString("utf8"));
  t.same(
    parsed.map((row) => row.line),
    [1, 3, 4, 5],
    "CRLF line ends, the blank line 2 skipped, line numbers kept",
  );
  const results = rowsOf("asterisk-master-no-uniqueid.csv").map((cells) =>
    mapped(mapAsteriskRow(cells, "pbx-legacy", BERLIN)),
  );
  const ids = results.map((cdr) => cdr.record.cdrId);
  t.equal(ids[0], "row-1bf28e2dbda0601bd1269df11ee7f81fb7c644ce82312e0a5482cb90d74362ad");
  t.equal(ids[2], ids[0], "the same row uploaded again (line 4) has the same key");
  t.not(ids[3], ids[0], "a row differing by one second (line 5) has a different key");
  t.not(ids[1], ids[0]);
  t.equal(new Set(ids).size, 3);
  const cells = rowsOf("asterisk-master-no-uniqueid.csv")[0] ?? [];
  t.equal(
    ids[0],
    `row-${createHash("sha256").update(JSON.stringify(cells)).digest("hex")}`,
    "sha256 of the JSON cells",
  );
  t.same(results[0]?.record, {
    recordType: "voice",
    cdrId: ids[0],
    source: "pbx-legacy",
    servedMSISDN: "1001",
    calledNumber: "+493012345678",
    recordOpeningTime: "2026-03-16T09:14:11+01:00",
    duration: 149,
    direction: "outgoing",
  });
  t.same(
    [results[1]?.chargeable, results[1]?.note, results[1]?.record.recordOpeningTime],
    [false, "NO ANSWER", "2026-03-16T09:20:00+01:00"],
  );

  // The same characters split differently between cells ("Dial" + "PJSIP/x,60" vs "Dial,PJSIP/x" + "60").
  const split = (lastapp: string, lastdata: string) =>
    mapped(mapAsteriskRow(asteriskRow({ 7: lastapp, 8: lastdata }, 16), "pbx", BERLIN)).record.cdrId;
  t.not(split("Dial", "PJSIP/x,60"), split("Dial,PJSIP/x", "60"), "cell boundaries are part of the key");
});

t.test("17 columns carry uniqueid; an empty uniqueid falls back to the hash", async (t) => {
  const key = "1773655200.64/PJSIP/carrier-de-00000051";
  t.equal(mapped(mapAsteriskRow(asteriskRow({}, 17), "pbx", BERLIN)).record.cdrId, key);
  t.equal(mapped(mapAsteriskRow(asteriskRow({}, 18), "pbx", BERLIN)).record.cdrId, key);
  t.equal(
    mapped(mapAsteriskRow(asteriskRow({ 6: "" }, 18), "pbx", BERLIN)).record.cdrId,
    "1773655200.64",
    "no destination channel: the uniqueid alone",
  );
  t.not(
    mapped(mapAsteriskRow(asteriskRow({ 6: "PJSIP/carrier-de-00000052" }, 18), "pbx", BERLIN)).record.cdrId,
    key,
    "Asterisk 12+ writes one row per dial attempt under one uniqueid: each destination channel is its own record",
  );
  const emptyId = asteriskRow({ 16: "" }, 17);
  t.equal(
    mapped(mapAsteriskRow(emptyId, "pbx", BERLIN)).record.cdrId,
    `row-${createHash("sha256").update(JSON.stringify(emptyId)).digest("hex")}`,
  );
});

t.test(
  "DST edges in Europe/Berlin: a skipped time moves forward, a repeated time takes its first occurrence",
  async (t) => {
    const opening = (start: string) =>
      mapped(mapAsteriskRow(asteriskRow({ [START]: start, [ANSWER]: "" }), "pbx", BERLIN)).record.recordOpeningTime;
    t.equal(opening("2026-03-29 01:59:59"), "2026-03-29T01:59:59+01:00");
    t.equal(
      opening("2026-03-29 02:30:00"),
      "2026-03-29T03:30:00+02:00",
      "02:30 does not exist; read with +01:00 it is 01:30Z",
    );
    t.equal(opening("2026-03-29 03:00:00"), "2026-03-29T03:00:00+02:00");
    t.equal(opening("2026-10-25 01:59:59"), "2026-10-25T01:59:59+02:00");
    t.equal(opening("2026-10-25 02:30:00"), "2026-10-25T02:30:00+02:00", "02:30 happens twice; the first is 00:30Z");
    t.equal(opening("2026-10-25 03:00:00"), "2026-10-25T03:00:00+01:00");
    t.equal(Date.parse(opening("2026-03-29 02:30:00") as string), Date.UTC(2026, 2, 29, 1, 30));
    t.equal(Date.parse(opening("2026-10-25 02:30:00") as string), Date.UTC(2026, 9, 25, 0, 30));
    t.same(localTimeToIso("2026-03-16 11:00:07", "UTC"), { ok: true, value: "2026-03-16T11:00:07Z" });
    t.same(localTimeToIso("2026-07-01 08:00:00", "America/New_York"), { ok: true, value: "2026-07-01T08:00:00-04:00" });
    t.same(localTimeToIso("2026-07-01 08:00:00", "Asia/Kolkata"), { ok: true, value: "2026-07-01T08:00:00+05:30" });
  },
);

t.test("a damaged line is rejected alone; the lines around it still parse", async (t) => {
  const parsed = parseAsteriskCsv(fixture("asterisk-master-damaged.csv").toString("utf8"));
  t.same(
    parsed.map((row) => ("cells" in row ? [row.line, row.cells.length] : [row.line, row.rejection])),
    [
      [1, 18],
      [2, { field: "row", reason: "column 10: quoted field is not terminated" }],
      [4, 18],
      [5, 14],
      [6, { field: "row", reason: "column 5: unexpected text after the closing quote" }],
      [7, 18],
    ],
    "a truncated line and a line with a lost quote are rejected; lines 1, 4 and 7 are intact",
  );
  const wrongCount = parsed[3];
  t.ok(wrongCount && "cells" in wrongCount);
  if (wrongCount && "cells" in wrongCount) {
    t.same(rejection(mapAsteriskRow(wrongCount.cells, "pbx", BERLIN)), {
      field: "row",
      reason: "expected 16, 17 or 18 columns (cdr_csv Master.csv), found 14",
    });
  }
  t.same(rejection(mapAsteriskRow([...asteriskRow(), "extra"], "pbx", BERLIN)), {
    field: "row",
    reason: "expected 16, 17 or 18 columns (cdr_csv Master.csv), found 19",
  });
});

t.test("the CSV line parser follows RFC 4180 quoting within a line", async (t) => {
  const cells = (text: string) => parseAsteriskCsv(text).map((row) => ("cells" in row ? row.cells : row.rejection));
  t.same(cells('"a","b""c",3,,"",x\n'), [["a", 'b"c', "3", "", "", "x"]]);
  t.same(cells("a,b,\r\n"), [["a", "b", ""]], "a trailing comma is one more empty cell");
  t.same(cells('"a,b"'), [["a,b"]], "no final line break");
  t.same(cells('\uFEFF"a"\n\n   \n"b"'), [["a"], ["b"]], "byte order mark and blank lines");
  t.same(cells('"a"x,"b"'), [{ field: "row", reason: "column 1: unexpected text after the closing quote" }]);
  t.same(cells('a"b,c'), [{ field: "row", reason: "column 1: a quote inside an unquoted field" }]);
  t.same(cells('"a","b\n"c"'), [{ field: "row", reason: "column 2: quoted field is not terminated" }, ["c"]]);
  t.same(cells("a,\u0000b"), [{ field: "row", reason: "contains a NUL character" }]);
});

t.test("rows with bad times, counts or numbers are rejected naming the column", async (t) => {
  const reject = (overrides: Partial<Record<number, string>>, timeZone = BERLIN) =>
    rejection(mapAsteriskRow(asteriskRow(overrides), "pbx", timeZone));
  t.same(reject({ [START]: "2026-02-30 10:00:00" }), {
    field: "start",
    reason: 'is not a calendar date between 2000 and 2099: "2026-02-30 10:00:00"',
  });
  t.same(reject({ [START]: "16/03/2026 11:00" }), {
    field: "start",
    reason: 'must be "YYYY-MM-DD HH:MM:SS", got "16/03/2026 11:00"',
  });
  t.same(reject({ [START]: "" }), { field: "start", reason: "is empty: the call has no start time" });
  t.same(reject({ [ANSWER]: "2026-03-16 24:00:07" }), {
    field: "answer",
    reason: 'is not a time of day: "2026-03-16 24:00:07"',
  });
  t.same(reject({ 11: "2026-03-16T11:01:12Z" }), {
    field: "end",
    reason: 'must be "YYYY-MM-DD HH:MM:SS", got "2026-03-16T11:01:12Z"',
  });
  t.same(reject({ [BILLSEC]: "65.0" }), {
    field: "billsec",
    reason: 'must be a non-negative whole number of seconds, got "65.0"',
  });
  t.same(reject({ [BILLSEC]: "-1" }), {
    field: "billsec",
    reason: 'must be a non-negative whole number of seconds, got "-1"',
  });
  t.same(reject({ 12: "seventy" }), {
    field: "duration",
    reason: 'must be a non-negative whole number of seconds, got "seventy"',
  });
  t.same(reject({ 1: "" }), { field: "src", reason: "is empty: the calling number is needed to find the subscriber" });
  t.same(reject({ 2: " " }), { field: "dst", reason: "is empty: the called number is needed to rate the call" });
  t.same(reject({}, "Europe/Atlantis"), {
    field: "timeZone",
    reason: '"Europe/Atlantis" is not a known IANA time zone',
  });
});

t.test("quoted integers and an ANSWERED row without an answer time still map", async (t) => {
  const quoted = parseAsteriskCsv(
    '"","+4915112345678","+493012345678","from-subscribers","","PJSIP/sub-1","PJSIP/carrier-1","Dial","","2026-03-16 11:00:00","2026-03-16 11:00:07","2026-03-16 11:01:12","72","65","ANSWERED","BILLING"',
  )[0];
  t.ok(quoted && "cells" in quoted);
  if (quoted && "cells" in quoted) {
    const cdr = mapped(mapAsteriskRow(quoted.cells, "pbx", BERLIN));
    t.same(
      [cdr.record.duration, cdr.chargeable, cdr.record.recordOpeningTime],
      [65, true, "2026-03-16T11:00:07+01:00"],
    );
  }
  const noAnswerTime = mapped(mapAsteriskRow(asteriskRow({ [ANSWER]: "" }), "pbx", BERLIN));
  t.same([noAnswerTime.record.recordOpeningTime, noAnswerTime.chargeable], ["2026-03-16T11:00:00+01:00", true]);
});

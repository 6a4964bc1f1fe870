import t from "tap";
import { isEuVatCountry, normalizeVatId, vatIdCountry, vatIdProblem } from "../../src/shared/vat-id.js";

/** VAT IDs by format (VIES and HMRC): each country's shape, the edges where it turns invalid, and the country. */

const VALID: Array<[string, string]> = [
  ["ATU12345678", "AT"],
  ["BE0123456789", "BE"],
  ["BE1234567890", "BE"],
  ["BG123456789", "BG"],
  ["BG1234567890", "BG"],
  ["CY12345678L", "CY"],
  ["CZ12345678", "CZ"],
  ["CZ1234567890", "CZ"],
  ["DE123456789", "DE"],
  ["DK12345678", "DK"],
  ["EE123456789", "EE"],
  ["EL123456789", "GR"],
  ["ESX1234567R", "ES"],
  ["ESB12345678", "ES"],
  ["ES12345678Z", "ES"],
  ["FI12345678", "FI"],
  ["FR40303265045", "FR"],
  ["FRAB123456789", "FR"],
  ["HR12345678901", "HR"],
  ["HU12345678", "HU"],
  ["IE1234567T", "IE"],
  ["IE1234567FA", "IE"],
  ["IE8Z49289F", "IE"],
  ["IT12345678901", "IT"],
  ["LT123456789", "LT"],
  ["LT123456789012", "LT"],
  ["LU12345678", "LU"],
  ["LV12345678901", "LV"],
  ["MT12345678", "MT"],
  ["NL123456789B01", "NL"],
  ["PL1234567890", "PL"],
  ["PT123456789", "PT"],
  ["RO12", "RO"],
  ["RO1234567890", "RO"],
  ["SE123456789001", "SE"],
  ["SI12345678", "SI"],
  ["SK1234567890", "SK"],
  ["GB123456789", "GB"],
  ["GB123456789012", "GB"],
  ["GBGD001", "GB"],
  ["GBHA599", "GB"],
];

t.test("valid VAT IDs of every EU member state and the United Kingdom, and the country each names", async (t) => {
  for (const [vatId, country] of VALID) {
    t.equal(vatIdProblem(vatId), null, `${vatId} is valid`);
    t.equal(vatIdCountry(vatId), country, `${vatId} is ${country}'s`);
  }
  const countries = new Set(VALID.map(([, country]) => country));
  countries.delete("GB");
  t.equal(countries.size, 27, "all 27 member states are covered");
});

t.test("a VAT ID one character off its country's format is refused, with the format in the message", async (t) => {
  const invalid: Array<[string, RegExp]> = [
    ["ATU1234567", /AT and U and 8 digits/],
    ["AT123456789", /AT and U and 8 digits/],
    ["BE2123456789", /0 or 1 and 9 digits/],
    ["BE012345678", /0 or 1 and 9 digits/],
    ["DE12345678", /DE and 9 digits/],
    ["DE1234567890", /DE and 9 digits/],
    ["DE12345678A", /DE and 9 digits/],
    ["FR1234567890", /FR and 2 letters or digits/],
    ["FRIO123456789", /not I or O/],
    ["ES123456789", /at least one of them a letter/],
    ["IT1234567890", /IT and 11 digits/],
    ["NL123456789A01", /9 digits, B and 2 digits/],
    ["NL12345678B01", /9 digits, B and 2 digits/],
    ["SE123456789012", /12 digits ending in 01/],
    ["RO0123", /not starting with 0/],
    ["RO1", /2 to 10 digits/],
    ["GB12345678", /GB and 9 or 12 digits/],
    ["GB1234567890", /GB and 9 or 12 digits/],
    ["GBGD500", /GD and 000–499/],
    ["GBHA499", /HA and 500–999/],
    ["CY123456789", /8 digits and a letter/],
  ];
  for (const [vatId, message] of invalid) t.match(vatIdProblem(vatId), message, `${vatId} is refused`);
});

t.test("prefixes: Greece is EL, not GR; unknown prefixes and written forms are refused", async (t) => {
  t.match(vatIdProblem("GR123456789"), /Greek VAT IDs start with EL/);
  t.match(vatIdProblem("US123456789"), /US, which is not the prefix/);
  t.match(vatIdProblem("CH123456789"), /CH, which is not the prefix/);
  t.match(vatIdProblem("de123456789"), /capitals without spaces or punctuation \(DE123456789\)/);
  t.match(vatIdProblem("DE 123 456 789"), /\(DE123456789\)/);
  t.match(vatIdProblem(""), /is empty/);
  t.match(vatIdProblem("DE12345678901234567"), /longer than any VAT ID/);
  t.equal(normalizeVatId("nl 1234.56789-b01"), "NL123456789B01");
  t.equal(vatIdCountry("GR123456789"), null);
  t.equal(vatIdCountry("XX1"), null);
});

t.test("EU VAT countries are the 27 member states by ISO code", async (t) => {
  for (const country of ["DE", "AT", "FR", "ES", "GR", "IE", "HR", "CY"]) t.ok(isEuVatCountry(country), country);
  for (const country of ["GB", "CH", "NO", "EL", "US", "de", ""]) t.notOk(isEuVatCountry(country), country);
});

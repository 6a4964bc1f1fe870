import fc from "fast-check";
import t from "tap";
import {
  billingDayOfMonth,
  canonicalTimeZone,
  daysInMonth,
  isCalendarDate,
  localDate,
  nextBillDate,
} from "../../src/shared/calendar.js";
import { isCountryCode, isE164, isEmailAddress, isTaxJurisdiction } from "../../src/shared/contact.js";
import { currencyMinorUnits, isCurrencyCode } from "../../src/shared/currency.js";

t.test("bill cycle days clamp to the month's last day", async (t) => {
  t.equal(billingDayOfMonth(31, 2027, 2), 28);
  t.equal(billingDayOfMonth(31, 2028, 2), 29);
  t.equal(billingDayOfMonth(30, 2100, 2), 28, "2100 is not a leap year");
  t.equal(billingDayOfMonth(31, 2027, 4), 30);
  t.equal(billingDayOfMonth(15, 2027, 2), 15);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 31 }),
      fc.integer({ min: 1970, max: 2200 }),
      fc.integer({ min: 1, max: 12 }),
      (day, year, month) => {
        const billed = billingDayOfMonth(day, year, month);
        return (
          billed >= 1 && billed <= daysInMonth(year, month) && (billed === day || billed === daysInMonth(year, month))
        );
      },
    ),
  );
});

t.test("the next bill date never lies before today in the account's zone", async (t) => {
  t.same(
    nextBillDate(1, localDate(new Date("2026-12-31T23:30:00Z"), "UTC")),
    { year: 2027, month: 1, day: 1 },
    "rolls over the year",
  );
  t.same(
    nextBillDate(31, localDate(new Date("2026-12-31T10:00:00Z"), "UTC")),
    { year: 2026, month: 12, day: 31 },
    "today counts",
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 31 }),
      fc.date({ min: new Date("2000-01-01"), max: new Date("2099-12-31"), noInvalidDate: true }),
      (day, instant) => {
        const next = nextBillDate(day, localDate(instant, "America/New_York"));
        const nextMs = Date.UTC(next.year, next.month - 1, next.day);
        const local = new Date(instant.toLocaleString("en-US", { timeZone: "America/New_York" }));
        const todayMs = Date.UTC(local.getFullYear(), local.getMonth(), local.getDate());
        return nextMs >= todayMs && nextMs - todayMs <= 31 * 86_400_000;
      },
    ),
  );
});

t.test("calendar dates and time zones", async (t) => {
  t.ok(isCalendarDate("2028-02-29"));
  t.notOk(isCalendarDate("2027-02-29"));
  t.notOk(isCalendarDate("2027-13-01"));
  t.equal(canonicalTimeZone("Europe/Berlin"), "Europe/Berlin");
  t.equal(canonicalTimeZone("UTC"), "UTC");
  t.equal(canonicalTimeZone("Mars/Olympus"), null);
  t.equal(canonicalTimeZone("+01:00"), null);
  t.equal(canonicalTimeZone("../../etc/passwd"), null);
});

t.test("contact data: E.164, e-mail, countries, tax jurisdictions, currencies", async (t) => {
  t.ok(isE164("+4915112345678"));
  t.notOk(isE164("+04915112345678"), "no leading zero in the country code");
  t.notOk(isE164("+49151123456789012"), "at most 15 digits");
  t.notOk(isE164("015112345678"));
  t.notOk(isE164("+49 151 1234567"));
  t.notOk(isE164("+4915112345678'; drop table--"));
  t.ok(isEmailAddress("ada.lovelace+bss@example.co.uk"));
  t.notOk(isEmailAddress("ada@localhost"));
  t.notOk(isEmailAddress("ada lovelace@example.com"));
  t.notOk(isEmailAddress("@example.com"));
  t.ok(isCountryCode("DE"));
  t.notOk(isCountryCode("ZZ"));
  t.notOk(isCountryCode("EU"));
  t.notOk(isCountryCode("de"));
  t.ok(isTaxJurisdiction("US-CA"));
  t.ok(isTaxJurisdiction("ES-CN"));
  t.notOk(isTaxJurisdiction("XX-CA"));
  t.ok(isCurrencyCode("EUR"));
  t.notOk(isCurrencyCode("XYZ"));
  t.notOk(isCurrencyCode("eur"));
  t.equal(currencyMinorUnits("EUR"), 2);
  t.equal(currencyMinorUnits("JPY"), 0);
  t.equal(currencyMinorUnits("KWD"), 3);
});

/**
 * Numbers as network elements write them, normalized to E.164 with the element's own rules (API.md, "CDRs
 * in"): `+` and the full number; the international prefix (`00`, `011`) standing for `+`; the national
 * prefix (`0`) standing for `+` and the country code; seven or more bare digits are international without
 * the plus (how 3GPP CDRs carry them) or, where the source says so, national without the trunk prefix (a North
 * American `2125551234`). Anything shorter is a short code (`112`, `*100#`), kept as written and allowed only
 * where the other party's number goes.
 */
export interface NumberRules {
  countryCode: string;
  nationalPrefix: string;
  internationalPrefix: string;
  bareNumbers: "international" | "national";
}

export type Normalized = { ok: true; value: string } | { ok: false; reason: string };

const E164 = /^\+[1-9][0-9]{6,14}$/;
const WRITTEN = /^\+?[0-9]{1,20}$/;
const SHORT_CODE = /^[0-9*#]{1,8}$/;
/** Bare digits from this length on are taken as international without the plus. */
const INTERNATIONAL_WITHOUT_PLUS_MIN = 7;
export const NUMBER_MAX_LENGTH = 32;

export function normalizeNumber(written: string, rules: NumberRules, allowShortCode: boolean): Normalized {
  if (written.length === 0 || written.length > NUMBER_MAX_LENGTH) {
    return { ok: false, reason: `must be 1 to ${NUMBER_MAX_LENGTH} characters` };
  }
  if (!WRITTEN.test(written)) {
    if (allowShortCode && SHORT_CODE.test(written)) return { ok: true, value: written };
    return { ok: false, reason: "must be digits with an optional leading +" };
  }
  let candidate: string;
  if (written.startsWith("+")) candidate = written;
  else if (rules.internationalPrefix !== "" && written.startsWith(rules.internationalPrefix)) {
    candidate = `+${written.slice(rules.internationalPrefix.length)}`;
  } else if (rules.nationalPrefix !== "" && written.startsWith(rules.nationalPrefix)) {
    candidate = `+${rules.countryCode}${written.slice(rules.nationalPrefix.length)}`;
  } else if (written.length >= INTERNATIONAL_WITHOUT_PLUS_MIN) {
    candidate = rules.bareNumbers === "national" ? `+${rules.countryCode}${written}` : `+${written}`;
  } else if (allowShortCode) return { ok: true, value: written };
  else return { ok: false, reason: "is too short for a subscriber number" };
  if (!E164.test(candidate)) {
    return { ok: false, reason: `normalizes to ${candidate}, which is not an E.164 number (7 to 15 digits)` };
  }
  return { ok: true, value: candidate };
}

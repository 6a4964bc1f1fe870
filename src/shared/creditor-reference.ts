/**
 * ISO 11649 structured creditor references ("RF" + two check digits + up to 21 letters and digits): printed on a bill
 * as its payment reference, carried by the payer's bank in the remittance information, and matched by cash
 * application. The check digits are ISO 7064 MOD 97-10, as for IBANs.
 */

const BODY = /^[0-9A-Z]{1,21}$/;

/** The reference for `body` (its letters and digits, upper-cased; at most 21 of them). */
export function creditorReference(body: string): string {
  const cleaned = body.toUpperCase().replace(/[^0-9A-Z]/g, "");
  if (!BODY.test(cleaned)) throw new Error(`a creditor reference holds 1 to 21 letters and digits, not "${body}"`);
  const check = 98 - mod97(`${cleaned}RF00`);
  return `RF${String(check).padStart(2, "0")}${cleaned}`;
}

/** Whether `text` (spaces allowed, any case) is a well-formed creditor reference with correct check digits. */
export function isCreditorReference(text: string): boolean {
  const compact = text.replace(/\s+/g, "").toUpperCase();
  if (!/^RF\d{2}[0-9A-Z]{1,21}$/.test(compact)) return false;
  return mod97(`${compact.slice(4)}${compact.slice(0, 4)}`) === 1;
}

/** The remainder of the number a string of letters (A = 10 … Z = 35) and digits spells, divided by 97. */
function mod97(text: string): number {
  let remainder = 0;
  for (const char of text) {
    const code = char.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder;
}

/**
 * Whether `text` is a SEPA creditor identifier (EPC262-08): country, two check digits, a three-character creditor
 * business code (not part of the check) and the national identifier; the check digits are ISO 7064 MOD 97-10 over
 * the national identifier, the country and the check digits.
 */
export function isSepaCreditorId(text: string): boolean {
  const compact = text.replace(/\s+/g, "").toUpperCase();
  if (!/^[A-Z]{2}\d{2}[0-9A-Z]{3}[0-9A-Z]{1,28}$/.test(compact)) return false;
  return mod97(`${compact.slice(7)}${compact.slice(0, 4)}`) === 1;
}

/** Telecom identifiers: ICCID (ITU-T E.118 with a Luhn check digit), IMSI (E.212), PIN, PUK, Ki, OPc. */

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** The Luhn check digit that completes `payload`. */
export function luhnCheckDigit(payload: string): string {
  for (let digit = 0; digit <= 9; digit++) if (luhnValid(`${payload}${digit}`)) return String(digit);
  throw new Error("unreachable: one of ten digits always completes a Luhn sum");
}

/** ICCID: 19 or 20 digits, starting 89 (telecom), the last a Luhn check digit. */
export function iccidProblem(iccid: string): string | null {
  if (!/^89\d{17,18}$/.test(iccid)) return "must be 19 or 20 digits starting with 89";
  if (!luhnValid(iccid)) return "has a wrong check digit";
  return null;
}

/** IMSI: 15 digits whose MCC+MNC is one of the operator's networks. */
export function imsiProblem(imsi: string, operatorPlmns: readonly string[]): string | null {
  if (!/^\d{15}$/.test(imsi)) return "must be 15 digits";
  if (!operatorPlmns.some((plmn) => imsi.startsWith(plmn))) {
    return `MCC/MNC ${imsi.slice(0, 5)} is not one of the operator's networks (${operatorPlmns.join(", ")})`;
  }
  return null;
}

export const SECRET_PATTERNS = {
  pin1: /^\d{4,8}$/,
  pin2: /^\d{4,8}$/,
  puk1: /^\d{8}$/,
  puk2: /^\d{8}$/,
  ki: /^[0-9A-Fa-f]{32}$/,
  opc: /^[0-9A-Fa-f]{32}$/,
} as const;

/**
 * Why a payment came back, by the code the bank or card scheme gives: the ISO 20022 external return reason codes of
 * SEPA direct debits (EPC SDD Rulebook, R-transactions) and a card chargeback. `fee`: the payer caused it, so the
 * catalog's reversal fee is charged (a bank's own error costs the customer nothing). `unauthorised`: the debit had no
 * valid mandate, so the debtor may have it returned for 13 months after collection, not the 8 weeks of an authorised
 * debit (EPC SDD Core rulebook 4.3.4; camt.053 returns read by statements.service.ts).
 */
export const REVERSAL_REASONS: Readonly<Record<string, { text: string; fee: boolean; unauthorised?: true }>> = {
  AC01: { text: "account identifier incorrect", fee: true },
  AC04: { text: "account closed", fee: true },
  AC06: { text: "account blocked", fee: true },
  AG01: { text: "direct debit forbidden on this account", fee: true },
  AG02: { text: "invalid bank operation code", fee: false },
  AM04: { text: "insufficient funds", fee: true },
  AM05: { text: "duplicate collection", fee: false },
  BE05: { text: "creditor not recognised", fee: false },
  FF01: { text: "invalid file format", fee: false },
  MD01: { text: "no valid mandate", fee: false, unauthorised: true },
  MD02: { text: "mandate data missing or incorrect", fee: false },
  MD06: { text: "refund requested by the debtor", fee: true },
  MD07: { text: "debtor deceased", fee: false },
  MS02: { text: "refused by the debtor", fee: true },
  MS03: { text: "reason not specified by the bank", fee: true },
  RC01: { text: "bank identifier incorrect", fee: false },
  RR01: { text: "regulatory: debtor account or identification missing", fee: false },
  RR02: { text: "regulatory: debtor name or address missing", fee: false },
  RR03: { text: "regulatory: creditor name or address missing", fee: false },
  RR04: { text: "regulatory reason", fee: false },
  SL01: { text: "refused by a service of the debtor's bank", fee: true },
  CHARGEBACK: { text: "card payment disputed by the card holder (chargeback)", fee: true },
  BANK_ERROR: { text: "payment recalled by the bank after its own error", fee: false },
};

export const REVERSAL_REASON_CODES = Object.keys(REVERSAL_REASONS);

/** The catalog offering whose one-time price is the fee for a reversed payment (absent: no fee). */
export const REVERSAL_FEE_OFFERING = "fee-payment-reversal";

import { create } from "xmlbuilder2";
import { Money } from "../../shared/money.js";

/**
 * A SEPA Core direct debit file, ISO 20022 pain.008.001.02 (the version the EPC SDD rulebooks and the German
 * banks' DFÜ agreement use), built with xmlbuilder2 from a plan: one payment information block per creditor and
 * sequence type (FRST, RCUR), each transaction quoting its mandate, the bill's payment reference as a structured
 * creditor reference (ISO 11649 RF, type SCOR) and the payment id as its end-to-end id, which a return quotes.
 */

export const PAIN008_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02";

export interface Creditor {
  name: string;
  iban: string;
  bic?: string | undefined;
  /** The SEPA creditor identifier (e.g. DE98ZZZ09999999999). */
  creditorId: string;
}

export interface PlannedDebit {
  endToEndId: string;
  /** Decimal text in EUR, two decimals. */
  amount: string;
  mandateReference: string;
  signatureDate: string;
  sequenceType: "FRST" | "RCUR";
  debtorName: string;
  debtorIban: string;
  debtorBic?: string | null | undefined;
  /** An RF creditor reference (structured), else text (unstructured). */
  reference: string;
  remittanceText: string;
}

export interface Pain008Plan {
  messageId: string;
  createdAt: Date;
  initiatingParty: string;
  collectionDate: string;
  blocks: Array<{ id: string; creditor: Creditor; sequenceType: "FRST" | "RCUR"; debits: PlannedDebit[] }>;
}

/** The SEPA character set (EPC best practice): what is outside it is replaced, and text is cut to its field's size. */
export function sepaText(text: string, max: number): string {
  const latin = text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  const cleaned = latin
    .replace(/[^A-Za-z0-9/\-?:().,'+ ]/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  return cleaned.slice(0, max) || "-";
}

function sum(debits: readonly PlannedDebit[]): string {
  return debits.reduce((total, debit) => total.plus(debit.amount), new Money(0)).toFixed(2);
}

/** The file's XML (UTF-8) with its totals: the transactions and their control sum. */
export function buildPain008(plan: Pain008Plan): { xml: string; transactions: number; controlSum: string } {
  const all = plan.blocks.flatMap((block) => block.debits);
  const root = create({ version: "1.0", encoding: "UTF-8" }).ele(PAIN008_NAMESPACE, "Document");
  const initiation = root.ele("CstmrDrctDbtInitn");
  const header = initiation.ele("GrpHdr");
  header.ele("MsgId").txt(plan.messageId);
  header.ele("CreDtTm").txt(plan.createdAt.toISOString().slice(0, 19));
  header.ele("NbOfTxs").txt(String(all.length));
  header.ele("CtrlSum").txt(sum(all));
  header.ele("InitgPty").ele("Nm").txt(sepaText(plan.initiatingParty, 70));
  for (const block of plan.blocks) {
    const info = initiation.ele("PmtInf");
    info.ele("PmtInfId").txt(block.id);
    info.ele("PmtMtd").txt("DD");
    // One booking per debit: the statement then quotes each end-to-end id, and collections match one by one.
    info.ele("BtchBookg").txt("false");
    info.ele("NbOfTxs").txt(String(block.debits.length));
    info.ele("CtrlSum").txt(sum(block.debits));
    const type = info.ele("PmtTpInf");
    type.ele("SvcLvl").ele("Cd").txt("SEPA");
    type.ele("LclInstrm").ele("Cd").txt("CORE");
    type.ele("SeqTp").txt(block.sequenceType);
    info.ele("ReqdColltnDt").txt(plan.collectionDate);
    info.ele("Cdtr").ele("Nm").txt(sepaText(block.creditor.name, 70));
    info.ele("CdtrAcct").ele("Id").ele("IBAN").txt(block.creditor.iban);
    agent(info.ele("CdtrAgt"), block.creditor.bic);
    info.ele("ChrgBr").txt("SLEV");
    const scheme = info.ele("CdtrSchmeId").ele("Id").ele("PrvtId").ele("Othr");
    scheme.ele("Id").txt(block.creditor.creditorId);
    scheme.ele("SchmeNm").ele("Prtry").txt("SEPA");
    for (const debit of block.debits) {
      const transaction = info.ele("DrctDbtTxInf");
      transaction.ele("PmtId").ele("EndToEndId").txt(debit.endToEndId);
      transaction.ele("InstdAmt", { Ccy: "EUR" }).txt(debit.amount);
      const mandate = transaction.ele("DrctDbtTx").ele("MndtRltdInf");
      mandate.ele("MndtId").txt(debit.mandateReference);
      mandate.ele("DtOfSgntr").txt(debit.signatureDate);
      agent(transaction.ele("DbtrAgt"), debit.debtorBic ?? undefined);
      transaction.ele("Dbtr").ele("Nm").txt(sepaText(debit.debtorName, 70));
      transaction.ele("DbtrAcct").ele("Id").ele("IBAN").txt(debit.debtorIban);
      const remittance = transaction.ele("RmtInf");
      if (/^RF\d{2}[A-Z0-9]{1,21}$/.test(debit.reference)) {
        const reference = remittance.ele("Strd").ele("CdtrRefInf");
        const kind = reference.ele("Tp");
        kind.ele("CdOrPrtry").ele("Cd").txt("SCOR");
        kind.ele("Issr").txt("ISO");
        reference.ele("Ref").txt(debit.reference);
      } else {
        remittance.ele("Ustrd").txt(sepaText(debit.remittanceText, 140));
      }
    }
  }
  return { xml: root.end({ prettyPrint: true }), transactions: all.length, controlSum: sum(all) };
}

/** A bank by BIC, or "NOTPROVIDED" (IBAN-only, allowed for SEPA since 2016). */
function agent(node: ReturnType<typeof create>, bic: string | undefined): void {
  const institution = node.ele("FinInstnId");
  if (bic !== undefined && bic !== "") institution.ele("BIC").txt(bic);
  else institution.ele("Othr").ele("Id").txt("NOTPROVIDED");
}

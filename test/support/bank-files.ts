import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "xmlbuilder2";

/**
 * Bank files for tests and benchmarks: camt.053.001.08 statements built from a list of entries (as a bank would
 * send them, valid against the ISO 20022 schema), and schema validation with xmllint (libxml2-utils).
 */

export const CAMT053_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";
export const SCHEMAS = path.resolve(import.meta.dirname, "../fixtures/iso20022");

export interface StatementEntrySpec {
  /** The bank's reference (AcctSvcrRef). */
  ref: string;
  amount: string;
  currency?: string;
  direction?: "CRDT" | "DBIT";
  status?: "BOOK" | "PDNG" | "INFO";
  reversal?: boolean;
  bookingDate?: string;
  valueDate?: string;
  /** Domain/Family/SubFamily, e.g. PMNT/RCDT/ESCT (a credit transfer) or PMNT/IDDT/UPDD (a returned debit). */
  bankCode?: [string, string, string];
  endToEndId?: string;
  debtorName?: string;
  debtorIban?: string;
  remittance?: string;
  creditorRef?: string;
  returnReason?: string;
}

export interface StatementSpec {
  messageId?: string;
  statementId?: string;
  account?: string;
  createdAt?: string;
  entries: StatementEntrySpec[];
}

/** The document's head and tail: a statement of any size is the head, its entries and the tail, streamed. */
export function camtParts(spec: Omit<StatementSpec, "entries">): { head: string; tail: string } {
  const marker = "@@ENTRIES@@";
  const xml = camt053({ ...spec, entries: [] }).replace("</Stmt>", `${marker}</Stmt>`);
  const [head, tail] = xml.split(marker) as [string, string];
  return { head, tail };
}

/** One entry's XML (for streaming large statements). */
export function camtEntry(entry: StatementEntrySpec): string {
  const root = create().ele("Wrap");
  addEntry(root, entry);
  return root.first().toString();
}

export function camt053(spec: StatementSpec): string {
  const created = spec.createdAt ?? "2026-12-01T06:00:00";
  const root = create({ version: "1.0", encoding: "UTF-8" }).ele(CAMT053_NAMESPACE, "Document");
  const statement = root.ele("BkToCstmrStmt");
  const header = statement.ele("GrpHdr");
  header.ele("MsgId").txt(spec.messageId ?? "MSG-1");
  header.ele("CreDtTm").txt(created);
  const stmt = statement.ele("Stmt");
  stmt.ele("Id").txt(spec.statementId ?? "STMT-1");
  stmt.ele("CreDtTm").txt(created);
  const account = stmt.ele("Acct");
  account
    .ele("Id")
    .ele("IBAN")
    .txt(spec.account ?? "DE89370400440532013000");
  account.ele("Ccy").txt("EUR");
  const balance = stmt.ele("Bal");
  balance.ele("Tp").ele("CdOrPrtry").ele("Cd").txt("CLBD");
  balance.ele("Amt", { Ccy: "EUR" }).txt("0.00");
  balance.ele("CdtDbtInd").txt("CRDT");
  balance.ele("Dt").ele("Dt").txt(created.slice(0, 10));
  for (const entry of spec.entries) addEntry(stmt, entry);
  return root.end({ prettyPrint: false });
}

function addEntry(parent: ReturnType<typeof create>, entry: StatementEntrySpec): void {
  const node = parent.ele("Ntry");
  node.ele("Amt", { Ccy: entry.currency ?? "EUR" }).txt(entry.amount);
  node.ele("CdtDbtInd").txt(entry.direction ?? "CRDT");
  if (entry.reversal) node.ele("RvslInd").txt("true");
  node
    .ele("Sts")
    .ele("Cd")
    .txt(entry.status ?? "BOOK");
  node
    .ele("BookgDt")
    .ele("Dt")
    .txt(entry.bookingDate ?? "2026-12-01");
  node
    .ele("ValDt")
    .ele("Dt")
    .txt(entry.valueDate ?? entry.bookingDate ?? "2026-12-01");
  node.ele("AcctSvcrRef").txt(entry.ref);
  const [domain, family, sub] =
    entry.bankCode ?? (entry.direction === "DBIT" ? ["PMNT", "IDDT", "UPDD"] : ["PMNT", "RCDT", "ESCT"]);
  const code = node.ele("BkTxCd").ele("Domn");
  code.ele("Cd").txt(domain);
  const fmly = code.ele("Fmly");
  fmly.ele("Cd").txt(family);
  fmly.ele("SubFmlyCd").txt(sub);
  const tx = node.ele("NtryDtls").ele("TxDtls");
  const refs = tx.ele("Refs");
  refs.ele("AcctSvcrRef").txt(entry.ref);
  refs.ele("EndToEndId").txt(entry.endToEndId ?? "NOTPROVIDED");
  if (entry.debtorName !== undefined || entry.debtorIban !== undefined) {
    const parties = tx.ele("RltdPties");
    if (entry.debtorName !== undefined) parties.ele("Dbtr").ele("Pty").ele("Nm").txt(entry.debtorName);
    if (entry.debtorIban !== undefined) parties.ele("DbtrAcct").ele("Id").ele("IBAN").txt(entry.debtorIban);
  }
  if (entry.remittance !== undefined || entry.creditorRef !== undefined) {
    const remittance = tx.ele("RmtInf");
    if (entry.remittance !== undefined) remittance.ele("Ustrd").txt(entry.remittance);
    if (entry.creditorRef !== undefined) {
      const reference = remittance.ele("Strd").ele("CdtrRefInf");
      const kind = reference.ele("Tp");
      kind.ele("CdOrPrtry").ele("Cd").txt("SCOR");
      kind.ele("Issr").txt("ISO");
      reference.ele("Ref").txt(entry.creditorRef);
    }
  }
  if (entry.returnReason !== undefined) tx.ele("RtrInf").ele("Rsn").ele("Cd").txt(entry.returnReason);
}

/** Whether xmllint is installed (`.ci/run` installs libxml2-utils). */
export function hasXmllint(): boolean {
  return spawnSync("xmllint", ["--version"], { stdio: "ignore" }).status === 0;
}

/** Validates `xml` against an XSD in test/fixtures/iso20022; answers xmllint's complaints, or null when valid. */
export function schemaProblems(xml: string, xsd: string): string | null {
  const folder = mkdtempSync(path.join(tmpdir(), "bss-xml-"));
  try {
    const file = path.join(folder, "document.xml");
    writeFileSync(file, xml);
    const result = spawnSync("xmllint", ["--noout", "--schema", path.join(SCHEMAS, xsd), file], { encoding: "utf8" });
    return result.status === 0 ? null : `${result.stderr}${result.stdout}`.trim();
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

import { SaxesParser, type SaxesTagNS } from "saxes";
import { isCalendarDate } from "../../shared/calendar.js";

/**
 * A streaming reader of ISO 20022 camt.053 bank statements (BankToCustomerStatement, versions 001.02 to 001.08),
 * built on saxes: the file is written in as it arrives and each entry comes out as soon as its closing tag is read,
 * so memory stays flat whatever the statement's size. It reads what cash application needs: the entry's amount,
 * direction, status, dates, the bank's references, the bank transaction code, and per transaction the end-to-end id,
 * the debtor and their IBAN, the remittance information and a return's reason. A batch booking (one entry, many
 * transactions) gives one entry per transaction. A file that is not well-formed XML, not camt.053, or has an entry
 * without an amount, a direction, a valid date or a reference to deduplicate it by is refused with the line.
 */

const NAMESPACE = /^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.0[2-8]$/;
/** No text node the reader keeps is longer (remittance lines are 140, references 35). */
const MAX_TEXT = 4_000;
/** camt.053 nests about 12 deep; far deeper is not a statement. */
const MAX_DEPTH = 40;

export class StatementFormatError extends Error {
  override name = "StatementFormatError";
}

export interface CamtEntry {
  /** Its position in the file (from 1). */
  seq: number;
  /** The statement's account: its IBAN, else the bank's other identifier. */
  account: string;
  statementRef: string | null;
  bankRef: string;
  direction: "CRDT" | "DBIT";
  reversal: boolean;
  bookingStatus: string;
  /** Decimal text, positive. */
  amount: string;
  currency: string;
  bookingDate: string | null;
  valueDate: string | null;
  bankCode: string | null;
  endToEndId: string | null;
  debtorName: string | null;
  debtorIban: string | null;
  remittance: string | null;
  creditorRef: string | null;
  returnReason: string | null;
}

interface Transaction {
  ref: string | null;
  endToEndId: string | null;
  amount: string | null;
  currency: string | null;
  direction: string | null;
  debtorName: string | null;
  debtorIban: string | null;
  remittance: string[];
  creditorRef: string | null;
  returnReason: string | null;
}

interface Entry {
  line: number;
  ntryRef: string | null;
  servicerRef: string | null;
  amount: string | null;
  currency: string | null;
  direction: string | null;
  reversal: boolean;
  status: string | null;
  bookingDate: string | null;
  valueDate: string | null;
  domain: string | null;
  family: string | null;
  subFamily: string | null;
  transactions: Transaction[];
}

function newTransaction(): Transaction {
  return {
    ref: null,
    endToEndId: null,
    amount: null,
    currency: null,
    direction: null,
    debtorName: null,
    debtorIban: null,
    remittance: [],
    creditorRef: null,
    returnReason: null,
  };
}

export class Camt053Reader {
  private readonly parser = new SaxesParser({ xmlns: true, position: true });
  private readonly path: string[] = [];
  private text = "";
  private entry: Entry | null = null;
  private transaction: Transaction | null = null;
  private account: string | null = null;
  private statementRef: string | null = null;
  private seq = 0;
  private ready: CamtEntry[] = [];
  private sawRoot = false;
  messageId: string | null = null;
  statements = 0;

  constructor() {
    this.parser.on("error", (error) => {
      throw new StatementFormatError(`not well-formed XML: ${error.message}`);
    });
    this.parser.on("opentag", (tag) => this.open(tag));
    this.parser.on("text", (text) => this.append(text));
    this.parser.on("cdata", (text) => this.append(text));
    this.parser.on("closetag", () => this.close());
  }

  /** Feeds the next piece of the file. */
  write(chunk: string): void {
    this.parser.write(chunk);
  }

  /** The file ended: refuses it when it was cut short. */
  end(): void {
    this.parser.close();
    if (!this.sawRoot) throw new StatementFormatError("the file holds no camt.053 Document");
  }

  /** How many read entries wait to be taken. */
  pending(): number {
    return this.ready.length;
  }

  /** The entries read since the last call. */
  take(): CamtEntry[] {
    const taken = this.ready;
    this.ready = [];
    return taken;
  }

  private fail(message: string): never {
    throw new StatementFormatError(`line ${this.parser.line}: ${message}`);
  }

  private append(text: string): void {
    if (this.text.length + text.length > MAX_TEXT) this.fail(`a text longer than ${MAX_TEXT} characters`);
    this.text += text;
  }

  private open(tag: SaxesTagNS): void {
    if (this.path.length === 0) {
      if (tag.local !== "Document" || !NAMESPACE.test(tag.uri)) {
        this.fail(
          `the root is ${tag.local} in namespace "${tag.uri}", not a camt.053 Document (urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 to .08)`,
        );
      }
      this.sawRoot = true;
    }
    if (this.path.length >= MAX_DEPTH) this.fail(`elements nested deeper than ${MAX_DEPTH}`);
    this.path.push(tag.local);
    this.text = "";
    const at = this.path.join("/");
    if (at === "Document/BkToCstmrStmt/Stmt") {
      this.statements += 1;
      this.account = null;
      this.statementRef = null;
    } else if (at === "Document/BkToCstmrStmt/Stmt/Ntry") {
      if (this.account === null) this.fail("an entry before its statement's account (Stmt/Acct/Id)");
      this.entry = {
        line: this.parser.line,
        ntryRef: null,
        servicerRef: null,
        amount: null,
        currency: null,
        direction: null,
        reversal: false,
        status: null,
        bookingDate: null,
        valueDate: null,
        domain: null,
        family: null,
        subFamily: null,
        transactions: [],
      };
    } else if (at.endsWith("/Ntry/NtryDtls/TxDtls")) {
      this.transaction = newTransaction();
    } else if (
      tag.local === "Amt" &&
      (at.endsWith("/Ntry/Amt") || at.endsWith("/TxDtls/Amt") || at.endsWith("/TxDtls/AmtDtls/TxAmt/Amt"))
    ) {
      const currency = tag.attributes.Ccy?.value ?? null;
      if (currency === null || !/^[A-Z]{3}$/.test(currency)) this.fail("an amount without a valid Ccy attribute");
      if (at.endsWith("/Ntry/Amt") && this.entry !== null) this.entry.currency = currency;
      else if (this.transaction !== null) this.transaction.currency = currency;
    }
  }

  private close(): void {
    const at = this.path.join("/");
    const value = this.text.trim();
    this.text = "";
    this.path.pop();
    if (at === "Document/GrpHdr/MsgId" || at === "Document/BkToCstmrStmt/GrpHdr/MsgId") this.messageId = value;
    else if (at === "Document/BkToCstmrStmt/Stmt/Id") this.statementRef = this.reference(value, "Stmt/Id");
    else if (at === "Document/BkToCstmrStmt/Stmt/Acct/Id/IBAN") {
      this.account = this.reference(value.replace(/\s+/g, "").toUpperCase(), "Acct/Id/IBAN");
    } else if (at === "Document/BkToCstmrStmt/Stmt/Acct/Id/Othr/Id") this.account ??= this.reference(value, "Acct/Id");
    else if (this.entry !== null) this.closeInEntry(at, value);
  }

  private closeInEntry(at: string, value: string): void {
    const entry = this.entry as Entry;
    const inEntry = at.slice(at.indexOf("/Ntry/") + 6);
    const tx = this.transaction;
    if (at === "Document/BkToCstmrStmt/Stmt/Ntry") {
      this.emit(entry);
      this.entry = null;
      return;
    }
    if (tx !== null && inEntry.startsWith("NtryDtls/TxDtls")) {
      const inTx = inEntry.slice("NtryDtls/TxDtls".length + 1);
      switch (inTx) {
        case "":
          entry.transactions.push(tx);
          this.transaction = null;
          return;
        case "Refs/AcctSvcrRef":
          tx.ref = this.reference(value, "AcctSvcrRef");
          return;
        case "Refs/EndToEndId":
          tx.endToEndId = value === "NOTPROVIDED" ? null : this.reference(value, "EndToEndId");
          return;
        case "Amt":
          tx.amount = this.amount(value);
          return;
        // camt.053.001.02 gives a transaction's amount only here.
        case "AmtDtls/TxAmt/Amt":
          tx.amount ??= this.amount(value);
          return;
        case "CdtDbtInd":
          if (value !== "CRDT" && value !== "DBIT") this.fail(`CdtDbtInd "${value}" is neither CRDT nor DBIT`);
          tx.direction = value;
          return;
        case "RltdPties/Dbtr/Pty/Nm":
        case "RltdPties/Dbtr/Nm":
          tx.debtorName = value;
          return;
        case "RltdPties/DbtrAcct/Id/IBAN":
          tx.debtorIban = value.replace(/\s+/g, "").toUpperCase();
          return;
        case "RmtInf/Ustrd":
          tx.remittance.push(value);
          return;
        case "RmtInf/Strd/CdtrRefInf/Ref":
          tx.creditorRef = value.replace(/\s+/g, "").toUpperCase();
          return;
        case "RtrInf/Rsn/Cd":
          tx.returnReason = value;
          return;
        default:
          return;
      }
    }
    switch (inEntry) {
      case "NtryRef":
        entry.ntryRef = this.reference(value, "NtryRef");
        return;
      case "AcctSvcrRef":
        entry.servicerRef = this.reference(value, "AcctSvcrRef");
        return;
      case "Amt":
        entry.amount = this.amount(value);
        return;
      case "CdtDbtInd":
        if (value !== "CRDT" && value !== "DBIT") this.fail(`CdtDbtInd "${value}" is neither CRDT nor DBIT`);
        entry.direction = value;
        return;
      case "RvslInd":
        entry.reversal = value === "true" || value === "1";
        return;
      case "Sts":
      case "Sts/Cd":
      case "Sts/Prtry":
        if (value !== "") entry.status = value;
        return;
      case "BookgDt/Dt":
      case "BookgDt/DtTm":
        entry.bookingDate = this.date(value, "BookgDt");
        return;
      case "ValDt/Dt":
      case "ValDt/DtTm":
        entry.valueDate = this.date(value, "ValDt");
        return;
      case "BkTxCd/Domn/Cd":
        entry.domain = value;
        return;
      case "BkTxCd/Domn/Fmly/Cd":
        entry.family = value;
        return;
      case "BkTxCd/Domn/Fmly/SubFmlyCd":
        entry.subFamily = value;
        return;
      default:
        return;
    }
  }

  /** A reference: ISO 20022 Max35Text. */
  private reference(value: string, field: string): string {
    if (value.length > 35) this.fail(`${field} is longer than 35 characters`);
    return value;
  }

  private amount(value: string): string {
    if (!/^\d{1,18}(\.\d{1,5})?$/.test(value) || /^0*(\.0*)?$/.test(value)) {
      this.fail(`amount "${value}" is not a positive decimal`);
    }
    return value;
  }

  private date(value: string, field: string): string {
    const day = value.slice(0, 10);
    if (!isCalendarDate(day)) this.fail(`${field} "${value}" is not a date`);
    return day;
  }

  private emit(entry: Entry): void {
    const where = `the entry at line ${entry.line}`;
    if (entry.amount === null || entry.currency === null) this.fail(`${where} has no amount (Amt)`);
    if (entry.direction === null) this.fail(`${where} has no CdtDbtInd`);
    if (entry.status === null) this.fail(`${where} has no status (Sts)`);
    // The bank's own reference is unique for the account; an entry reference is only unique in its statement.
    const ref = entry.servicerRef ?? (entry.ntryRef === null ? null : `${this.statementRef ?? ""}:${entry.ntryRef}`);
    if (ref === null || entry.servicerRef === "" || entry.ntryRef === "") {
      this.fail(`${where} has neither AcctSvcrRef nor NtryRef: it could not be told from a duplicate`);
    }
    const bankCode =
      entry.domain === null
        ? null
        : [entry.domain, entry.family, entry.subFamily].filter((part) => part !== null).join("/");
    const transactions = entry.transactions.length === 0 ? [newTransaction()] : entry.transactions;
    const batch = transactions.length > 1;
    transactions.forEach((tx, index) => {
      if (batch && (tx.amount === null || tx.currency === null)) {
        this.fail(`${where}: transaction ${index + 1} of a batch booking has no amount`);
      }
      this.seq += 1;
      this.ready.push({
        seq: this.seq,
        account: this.account as string,
        statementRef: this.statementRef,
        bankRef: batch ? `${ref}/${tx.ref ?? index + 1}` : ref,
        direction: (batch ? (tx.direction ?? entry.direction) : entry.direction) as "CRDT" | "DBIT",
        reversal: entry.reversal,
        bookingStatus: entry.status as string,
        amount: (batch ? tx.amount : entry.amount) as string,
        currency: (batch ? tx.currency : entry.currency) as string,
        bookingDate: entry.bookingDate,
        valueDate: entry.valueDate,
        bankCode,
        endToEndId: tx.endToEndId,
        debtorName: tx.debtorName,
        debtorIban: tx.debtorIban,
        remittance: tx.remittance.length === 0 ? null : tx.remittance.join(" "),
        creditorRef: tx.creditorRef,
        returnReason: tx.returnReason,
      });
    });
  }
}

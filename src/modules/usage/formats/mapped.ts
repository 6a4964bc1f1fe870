/**
 * What a switch-format mapper (FreeSWITCH, Asterisk) produces from one of its records: a record in the
 * native field names of API.md (`recordType`, `cdrId`, `source`, `servedMSISDN`, `calledNumber`,
 * `recordOpeningTime` as ISO 8601 with offset, `duration` in whole seconds, `direction`), which then goes
 * through the same per-record validation, number normalization and guiding as a native CDR; or a
 * rejection naming the field and the reason.
 */
export interface MappedCdr {
  /** Native fields; numbers as the switch wrote them (normalized to E.164 later, per source). */
  record: Record<string, unknown>;
  /** false for legs that are recorded but never charged (unanswered, busy, billsec 0). */
  chargeable: boolean;
  /** Why a leg is not chargeable ("NO ANSWER", "billsec 0"); shown in the outcome. */
  note?: string;
}

export interface RecordRejection {
  /** The field of the switch's own record that is wrong (e.g. "variables.billsec", "start"). */
  field: string;
  reason: string;
}

export type MapResult = { ok: true; cdr: MappedCdr } | { ok: false; rejection: RecordRejection };

/**
 * Usage summaries against their rated rows (issue 22): every rated row is in exactly the summary of its account,
 * period, line, service and zone, numbered 1…last_seq without gaps, and every summary's totals are its rows' sums.
 * Run after every test's engine (its teardown) and in the shared post-fault checks.
 */
export const SUMMARY_CHECK = `select
  (select count(*) from rated_usage where summary_id is null or seq is null)::int as unsummarised,
  (select count(*) from usage_summaries s
     left join (select summary_id, count(*) as n, max(seq) as m, sum(quantity) as q, sum(charged_units) as c,
                  sum(amount) as a
                from rated_usage group by summary_id) r on r.summary_id = s.id
     where r.summary_id is null or s.last_seq <> r.n or s.last_seq <> r.m or s.quantity <> r.q
       or s.charged_units <> r.c or s.amount <> r.a)::int as mismatched,
  (select count(*) from rated_usage r join usage_summaries s on s.id = r.summary_id
     where r.billing_account_id <> s.billing_account_id or r.spend_period <> s.usage_period
       or r.product_id <> s.product_id or r.record_type <> s.service or coalesce(r.destination, '') <> s.zone
       or r.prepaid <> s.prepaid)::int as misfiled`;

export interface SummaryProblems {
  unsummarised: number;
  mismatched: number;
  misfiled: number;
}

export function describeProblems(problems: SummaryProblems | undefined): string | null {
  if (problems === undefined) return "the summary check answered nothing";
  const { unsummarised, mismatched, misfiled } = problems;
  if (unsummarised === 0 && mismatched === 0 && misfiled === 0) return null;
  return `usage summaries differ from their rated rows: ${unsummarised} rated rows in no summary, ${mismatched} summaries whose totals or numbering differ, ${misfiled} rows in another key's summary`;
}

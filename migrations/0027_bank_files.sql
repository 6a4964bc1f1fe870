CREATE TABLE "bank_statements" (
	"id" uuid PRIMARY KEY NOT NULL,
	"statement_ref" text,
	"account" text,
	"message_id" text,
	"status" text NOT NULL,
	"entries" integer DEFAULT 0 NOT NULL,
	"error" text,
	"created_at" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "bank_statements_status_check" CHECK ("bank_statements"."status" in ('receiving', 'staged', 'applied', 'rejected'))
);
--> statement-breakpoint
CREATE TABLE "direct_debit_files" (
	"id" uuid PRIMARY KEY NOT NULL,
	"message_id" text NOT NULL,
	"collection_date" date NOT NULL,
	"transactions" integer NOT NULL,
	"control_sum" numeric(24, 6) NOT NULL,
	"skipped" jsonb NOT NULL,
	"xml" text NOT NULL,
	"sha256" text NOT NULL,
	"idempotency_key" text,
	"request_hash" text,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "direct_debits" (
	"id" uuid PRIMARY KEY NOT NULL,
	"file_id" uuid NOT NULL,
	"mandate_id" uuid NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"invoice_id" uuid NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"sequence_type" text NOT NULL,
	"collection_date" date NOT NULL,
	"end_to_end_id" text NOT NULL,
	"status" text NOT NULL,
	"status_date" timestamp with time zone NOT NULL,
	"return_reason" text,
	CONSTRAINT "direct_debits_sequence_check" CHECK ("direct_debits"."sequence_type" in ('FRST', 'RCUR')),
	CONSTRAINT "direct_debits_status_check" CHECK ("direct_debits"."status" in ('pending', 'collected', 'returned')),
	CONSTRAINT "direct_debits_amount_check" CHECK ("direct_debits"."amount" > 0)
);
--> statement-breakpoint
CREATE TABLE "mandates" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"reference" text NOT NULL,
	"signature_date" date NOT NULL,
	"debtor_name" text NOT NULL,
	"iban" text NOT NULL,
	"bic" text,
	"sequence" text NOT NULL,
	"status" text NOT NULL,
	"status_date" timestamp with time zone NOT NULL,
	"last_collection_date" date,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "mandates_sequence_check" CHECK ("mandates"."sequence" in ('first', 'recurring')),
	CONSTRAINT "mandates_status_check" CHECK ("mandates"."status" in ('active', 'lapsed', 'revoked'))
);
--> statement-breakpoint
CREATE TABLE "statement_entries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"statement_id" uuid NOT NULL,
	"seq" integer NOT NULL,
	"account" text NOT NULL,
	"bank_ref" text NOT NULL,
	"duplicate_of" uuid,
	"direction" text NOT NULL,
	"reversal" boolean DEFAULT false NOT NULL,
	"booking_status" text NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"booking_date" date,
	"value_date" date,
	"debtor_name" text,
	"debtor_iban" text,
	"remittance" text,
	"creditor_ref" text,
	"end_to_end_id" text,
	"return_reason" text,
	"bank_code" text,
	"outcome" text NOT NULL,
	"detail" text,
	"matched_by" text,
	"payment_id" uuid,
	"billing_account_id" uuid,
	"candidates" jsonb,
	"created_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	CONSTRAINT "statement_entries_direction_check" CHECK ("statement_entries"."direction" in ('CRDT', 'DBIT')),
	CONSTRAINT "statement_entries_outcome_check" CHECK ("statement_entries"."outcome" in ('staged', 'matched', 'collected', 'returned', 'unmatched', 'ambiguous', 'assigned', 'ignored', 'duplicate')),
	CONSTRAINT "statement_entries_amount_check" CHECK ("statement_entries"."amount" > 0)
);
--> statement-breakpoint
ALTER TABLE "payments" DROP CONSTRAINT "payments_id_check";--> statement-breakpoint
ALTER TABLE "payments" ALTER COLUMN "entry_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "direct_debits" ADD CONSTRAINT "direct_debits_id_payments_id_fk" FOREIGN KEY ("id") REFERENCES "public"."payments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "direct_debits" ADD CONSTRAINT "direct_debits_file_id_direct_debit_files_id_fk" FOREIGN KEY ("file_id") REFERENCES "public"."direct_debit_files"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "direct_debits" ADD CONSTRAINT "direct_debits_mandate_id_mandates_id_fk" FOREIGN KEY ("mandate_id") REFERENCES "public"."mandates"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "statement_entries" ADD CONSTRAINT "statement_entries_statement_id_bank_statements_id_fk" FOREIGN KEY ("statement_id") REFERENCES "public"."bank_statements"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "direct_debit_files_message_idx" ON "direct_debit_files" USING btree ("message_id");--> statement-breakpoint
CREATE UNIQUE INDEX "direct_debit_files_key_idx" ON "direct_debit_files" USING btree ("idempotency_key") WHERE "direct_debit_files"."idempotency_key" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "direct_debits_e2e_idx" ON "direct_debits" USING btree ("end_to_end_id");--> statement-breakpoint
CREATE UNIQUE INDEX "direct_debits_pending_idx" ON "direct_debits" USING btree ("invoice_id") WHERE "direct_debits"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "direct_debits_due_idx" ON "direct_debits" USING btree ("collection_date") WHERE "direct_debits"."status" = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "mandates_reference_idx" ON "mandates" USING btree ("reference");--> statement-breakpoint
CREATE INDEX "mandates_account_idx" ON "mandates" USING btree ("billing_account_id");--> statement-breakpoint
CREATE INDEX "mandates_iban_idx" ON "mandates" USING btree ("iban");--> statement-breakpoint
CREATE UNIQUE INDEX "statement_entries_ref_idx" ON "statement_entries" USING btree ("account","bank_ref") WHERE "statement_entries"."duplicate_of" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "statement_entries_seq_idx" ON "statement_entries" USING btree ("statement_id","seq");--> statement-breakpoint
CREATE INDEX "statement_entries_worklist_idx" ON "statement_entries" USING btree ("created_at") WHERE "statement_entries"."outcome" in ('unmatched', 'ambiguous');--> statement-breakpoint
CREATE INDEX "invoices_payment_reference_idx" ON "invoices" USING btree ("payment_reference");--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_pending_check" CHECK (("payments"."status" = 'pending') = ("payments"."entry_id" is null));--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_id_check" CHECK ("payments"."entry_id" is null or "payments"."id" = "payments"."entry_id");
--> statement-breakpoint
-- A pending payment (a direct debit before its collection date) gets its ledger entry once, when it is collected;
-- beyond that a payment or refund still changes only its status.
CREATE OR REPLACE FUNCTION "money_movement_immutable"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  loose text[] := ARRAY['status', 'status_date', 'reversal_entry_id', 'reversal_reason', 'reversal_note'];
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
  END IF;
  IF to_jsonb(OLD) -> 'entry_id' = 'null'::jsonb THEN
    loose := loose || ARRAY['entry_id'];
  END IF;
  IF (to_jsonb(NEW) - loose) IS DISTINCT FROM (to_jsonb(OLD) - loose)
     OR (OLD."status" IN ('reversed', 'completed') AND NEW."status" IS DISTINCT FROM OLD."status") THEN
    RAISE EXCEPTION 'a % row changes only its status', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;

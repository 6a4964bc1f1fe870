CREATE TABLE "allocations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"invoice_id" uuid NOT NULL,
	"entry_id" uuid NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"at" timestamp with time zone NOT NULL,
	CONSTRAINT "allocations_amount_check" CHECK ("allocations"."amount" > 0)
);
--> statement-breakpoint
CREATE TABLE "bill_requests" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"name" text,
	"description" text,
	"state" text NOT NULL,
	"invoice_id" uuid,
	"reason" text,
	"idempotency_key" text,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "bill_requests_state_check" CHECK ("bill_requests"."state" in ('done', 'rejected'))
);
--> statement-breakpoint
CREATE TABLE "document_series" (
	"issuer_id" text NOT NULL,
	"kind" text NOT NULL,
	"year" integer NOT NULL,
	"last_number" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "document_series_issuer_id_kind_year_pk" PRIMARY KEY("issuer_id","kind","year"),
	CONSTRAINT "document_series_kind_check" CHECK ("document_series"."kind" in ('invoice', 'creditNote')),
	CONSTRAINT "document_series_last_check" CHECK ("document_series"."last_number" >= 0)
);
--> statement-breakpoint
CREATE TABLE "invoice_lines" (
	"id" uuid PRIMARY KEY NOT NULL,
	"invoice_id" uuid NOT NULL,
	"line_count" integer NOT NULL,
	"position" integer NOT NULL,
	"key" text NOT NULL,
	"kind" text NOT NULL,
	"product_id" uuid,
	"price_id" text,
	"one_time_charge_id" uuid,
	"usage_summary_id" uuid,
	"from_seq" bigint,
	"to_seq" bigint,
	"name" text NOT NULL,
	"period_start" timestamp with time zone,
	"period_end" timestamp with time zone,
	"days" integer,
	"basis_days" integer,
	"amount" numeric(24, 6) NOT NULL,
	"discount" numeric(24, 6) NOT NULL,
	"charge" numeric(24, 6) NOT NULL,
	"net" numeric(24, 6) NOT NULL,
	"line_tax" numeric(24, 6) NOT NULL,
	"tax_included" boolean NOT NULL,
	"tax_class" text NOT NULL,
	"tax_category" text NOT NULL,
	"tax_rate" numeric(9, 6) NOT NULL,
	"exemption_reason" text,
	"late" boolean NOT NULL,
	"usage" jsonb,
	"promotions" jsonb NOT NULL,
	"credited_line_id" uuid,
	CONSTRAINT "invoice_lines_position_check" CHECK ("invoice_lines"."position" >= 0 and "invoice_lines"."position" < "invoice_lines"."line_count")
);
--> statement-breakpoint
CREATE TABLE "invoices" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"issuer_id" text NOT NULL,
	"issuer_name" text NOT NULL,
	"year" integer NOT NULL,
	"seq" bigint NOT NULL,
	"number" text NOT NULL,
	"payment_reference" text NOT NULL,
	"credited_invoice_id" uuid,
	"currency" text NOT NULL,
	"usage_period" text,
	"period_start" timestamp with time zone,
	"period_end" timestamp with time zone,
	"advance_start" timestamp with time zone,
	"advance_end" timestamp with time zone,
	"issue_date" date NOT NULL,
	"due_date" date NOT NULL,
	"time_zone" text NOT NULL,
	"issued_at" timestamp with time zone NOT NULL,
	"net" numeric(24, 6) NOT NULL,
	"tax" numeric(24, 6) NOT NULL,
	"gross" numeric(24, 6) NOT NULL,
	"previous_balance" numeric(24, 6) NOT NULL,
	"payments_since" numeric(24, 6) NOT NULL,
	"credits_since" numeric(24, 6) NOT NULL,
	"total_due" numeric(24, 6) NOT NULL,
	"reverse_charge" boolean NOT NULL,
	"taxes" jsonb NOT NULL,
	"notes" jsonb NOT NULL,
	"reason" text,
	"state" text NOT NULL,
	"state_changed_at" timestamp with time zone NOT NULL,
	"sent_at" timestamp with time zone,
	"message_id" uuid,
	"line_count" integer NOT NULL,
	CONSTRAINT "invoices_kind_check" CHECK ("invoices"."kind" in ('cycle', 'interim', 'final', 'creditNote')),
	CONSTRAINT "invoices_state_check" CHECK ("invoices"."state" in ('validated', 'sent', 'partiallyPaid', 'settled', 'onHold')),
	CONSTRAINT "invoices_credit_note_check" CHECK (("invoices"."kind" = 'creditNote') = ("invoices"."credited_invoice_id" is not null)),
	CONSTRAINT "invoices_total_check" CHECK ("invoices"."gross" = "invoices"."net" + "invoices"."tax")
);
--> statement-breakpoint
CREATE TABLE "receivable_entries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"seq" bigserial NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"invoice_id" uuid,
	"at" timestamp with time zone NOT NULL,
	"description" text NOT NULL,
	CONSTRAINT "receivable_entries_kind_check" CHECK ("receivable_entries"."kind" in ('invoice', 'creditNote', 'payment', 'refund', 'reversal', 'writeOff', 'fee'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "invoices_id_line_count_idx" ON "invoices" USING btree ("id","line_count");--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_invoice_id_invoices_id_fk" FOREIGN KEY ("invoice_id") REFERENCES "public"."invoices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_entry_id_receivable_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."receivable_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "bill_requests" ADD CONSTRAINT "bill_requests_invoice_id_invoices_id_fk" FOREIGN KEY ("invoice_id") REFERENCES "public"."invoices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "invoice_lines" ADD CONSTRAINT "invoice_lines_invoice_id_line_count_invoices_id_line_count_fk" FOREIGN KEY ("invoice_id","line_count") REFERENCES "public"."invoices"("id","line_count") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "receivable_entries" ADD CONSTRAINT "receivable_entries_invoice_id_invoices_id_fk" FOREIGN KEY ("invoice_id") REFERENCES "public"."invoices"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "allocations_invoice_idx" ON "allocations" USING btree ("invoice_id");--> statement-breakpoint
CREATE INDEX "allocations_entry_idx" ON "allocations" USING btree ("entry_id");--> statement-breakpoint
CREATE INDEX "bill_requests_account_idx" ON "bill_requests" USING btree ("billing_account_id");--> statement-breakpoint
CREATE UNIQUE INDEX "bill_requests_key_idx" ON "bill_requests" USING btree ("billing_account_id","idempotency_key") WHERE "bill_requests"."idempotency_key" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "invoice_lines_position_idx" ON "invoice_lines" USING btree ("invoice_id","position");--> statement-breakpoint
CREATE UNIQUE INDEX "invoice_lines_one_time_charge_idx" ON "invoice_lines" USING btree ("one_time_charge_id");--> statement-breakpoint
CREATE INDEX "invoice_lines_credited_idx" ON "invoice_lines" USING btree ("credited_line_id");--> statement-breakpoint
CREATE INDEX "invoice_lines_product_idx" ON "invoice_lines" USING btree ("product_id");--> statement-breakpoint
CREATE UNIQUE INDEX "invoices_number_idx" ON "invoices" USING btree ("number");--> statement-breakpoint
CREATE UNIQUE INDEX "invoices_cycle_idx" ON "invoices" USING btree ("billing_account_id","usage_period") WHERE "invoices"."kind" = 'cycle';--> statement-breakpoint
CREATE INDEX "invoices_account_idx" ON "invoices" USING btree ("billing_account_id","issued_at");--> statement-breakpoint
CREATE INDEX "invoices_credited_idx" ON "invoices" USING btree ("credited_invoice_id");--> statement-breakpoint
CREATE UNIQUE INDEX "receivable_entries_seq_idx" ON "receivable_entries" USING btree ("seq");--> statement-breakpoint
CREATE UNIQUE INDEX "receivable_entries_document_idx" ON "receivable_entries" USING btree ("invoice_id") WHERE "receivable_entries"."invoice_id" is not null;--> statement-breakpoint
CREATE INDEX "receivable_entries_account_idx" ON "receivable_entries" USING btree ("billing_account_id","seq");--> statement-breakpoint
-- An issued document never changes (DESIGN.md §10): only its state and what follows it (sent, the message) move.
CREATE FUNCTION "invoices_immutable"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  candidate "invoices"%ROWTYPE;
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'issued document % cannot be deleted', OLD."number" USING ERRCODE = 'restrict_violation';
  END IF;
  candidate := NEW;
  candidate."state" := OLD."state";
  candidate."state_changed_at" := OLD."state_changed_at";
  candidate."sent_at" := OLD."sent_at";
  candidate."message_id" := OLD."message_id";
  IF candidate IS DISTINCT FROM OLD THEN
    RAISE EXCEPTION 'issued document % cannot change: only its state can', OLD."number" USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "invoices_immutable" BEFORE UPDATE OR DELETE ON "invoices" FOR EACH ROW EXECUTE FUNCTION "invoices_immutable"();--> statement-breakpoint
-- Lines, ledger entries and allocations are written once and never changed or removed.
CREATE FUNCTION "refuse_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are written once and never changed', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;--> statement-breakpoint
CREATE TRIGGER "invoice_lines_immutable" BEFORE UPDATE OR DELETE ON "invoice_lines" FOR EACH ROW EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "receivable_entries_immutable" BEFORE UPDATE OR DELETE ON "receivable_entries" FOR EACH ROW EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "allocations_immutable" BEFORE UPDATE OR DELETE ON "allocations" FOR EACH ROW EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "invoice_lines_no_truncate" BEFORE TRUNCATE ON "invoice_lines" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "invoices_no_truncate" BEFORE TRUNCATE ON "invoices" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "receivable_entries_no_truncate" BEFORE TRUNCATE ON "receivable_entries" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
-- At commit, a document has all its lines and they add up to it (checked once per document, on its first line).
CREATE FUNCTION "invoice_lines_complete"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  doc record;
  found_lines integer;
  summed numeric;
BEGIN
  SELECT "number", "line_count", "net" INTO doc FROM "invoices" WHERE "id" = NEW."invoice_id";
  SELECT count(*), coalesce(sum("net"), 0) INTO found_lines, summed FROM "invoice_lines" WHERE "invoice_id" = NEW."invoice_id";
  IF found_lines <> doc."line_count" OR summed <> doc."net" THEN
    RAISE EXCEPTION 'document % has % lines adding up to %, it says % lines adding up to %',
      doc."number", found_lines, summed, doc."line_count", doc."net" USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "invoice_lines_complete" AFTER INSERT ON "invoice_lines" DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW WHEN (NEW."position" = 0) EXECUTE FUNCTION "invoice_lines_complete"();--> statement-breakpoint
-- No allocation exceeds what the invoice has open or what the crediting entry has left (both rows locked).
CREATE FUNCTION "allocations_within"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bill record;
  entry record;
  applied numeric;
BEGIN
  SELECT "billing_account_id", "gross", "currency", "number" INTO bill FROM "invoices" WHERE "id" = NEW."invoice_id" FOR UPDATE;
  SELECT "billing_account_id", "amount", "currency" INTO entry FROM "receivable_entries" WHERE "id" = NEW."entry_id" FOR UPDATE;
  IF bill."billing_account_id" <> NEW."billing_account_id" OR entry."billing_account_id" <> NEW."billing_account_id"
     OR bill."currency" <> entry."currency" THEN
    RAISE EXCEPTION 'an allocation joins an invoice and an entry of one account in one currency' USING ERRCODE = 'check_violation';
  END IF;
  SELECT coalesce(sum("amount"), 0) INTO applied FROM "allocations" WHERE "invoice_id" = NEW."invoice_id";
  IF applied + NEW."amount" > bill."gross" THEN
    RAISE EXCEPTION 'allocation of % to % exceeds its open amount %', NEW."amount", bill."number", bill."gross" - applied
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT coalesce(sum("amount"), 0) INTO applied FROM "allocations" WHERE "entry_id" = NEW."entry_id";
  IF applied + NEW."amount" > -entry."amount" THEN
    RAISE EXCEPTION 'allocation of % exceeds what entry % has left, %', NEW."amount", NEW."entry_id", -entry."amount" - applied
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "allocations_within" BEFORE INSERT ON "allocations" FOR EACH ROW EXECUTE FUNCTION "allocations_within"();

CREATE TABLE "allocation_totals" (
	"side" text NOT NULL,
	"id" uuid NOT NULL,
	"applied" numeric(24, 6) NOT NULL,
	CONSTRAINT "allocation_totals_side_id_pk" PRIMARY KEY("side","id"),
	CONSTRAINT "allocation_totals_side_check" CHECK ("allocation_totals"."side" in ('target', 'credit')),
	CONSTRAINT "allocation_totals_applied_check" CHECK ("allocation_totals"."applied" >= 0)
);
--> statement-breakpoint
CREATE TABLE "payment_methods" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"name" text,
	"is_default" boolean DEFAULT false NOT NULL,
	"iban" text,
	"bic" text,
	"account_holder" text,
	"mandate_reference" text,
	"provider" text,
	"token" text,
	"brand" text,
	"last_four" text,
	"expiry" text,
	"state" text DEFAULT 'active' NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "payment_methods_kind_check" CHECK ("payment_methods"."kind" in ('bankTransfer', 'directDebit', 'card')),
	CONSTRAINT "payment_methods_state_check" CHECK ("payment_methods"."state" in ('active', 'removed')),
	CONSTRAINT "payment_methods_debit_check" CHECK ("payment_methods"."kind" <> 'directDebit' or "payment_methods"."iban" is not null),
	CONSTRAINT "payment_methods_card_check" CHECK ("payment_methods"."kind" <> 'card' or ("payment_methods"."provider" is not null and "payment_methods"."token" is not null))
);
--> statement-breakpoint
CREATE TABLE "payments" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"entry_id" uuid NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"payment_method_id" uuid,
	"method_kind" text NOT NULL,
	"payment_date" timestamp with time zone NOT NULL,
	"name" text,
	"description" text,
	"channel" text,
	"correlator_id" text,
	"authorization_code" text,
	"matched_by" text NOT NULL,
	"status" text NOT NULL,
	"status_date" timestamp with time zone NOT NULL,
	"reversal_entry_id" uuid,
	"reversal_reason" text,
	"reversal_note" text,
	"idempotency_key" text,
	"request_hash" text,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "payments_id_check" CHECK ("payments"."id" = "payments"."entry_id"),
	CONSTRAINT "payments_amount_check" CHECK ("payments"."amount" > 0),
	CONSTRAINT "payments_status_check" CHECK ("payments"."status" in ('pending', 'succeeded', 'reversed')),
	CONSTRAINT "payments_method_check" CHECK ("payments"."method_kind" in ('bankTransfer', 'directDebit', 'card', 'cash', 'cheque')),
	CONSTRAINT "payments_matched_check" CHECK ("payments"."matched_by" in ('items', 'reference', 'oldest', 'none')),
	CONSTRAINT "payments_reversal_check" CHECK (("payments"."status" = 'reversed') = ("payments"."reversal_entry_id" is not null and "payments"."reversal_reason" is not null))
);
--> statement-breakpoint
CREATE TABLE "refunds" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"entry_id" uuid NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"payment_method_id" uuid,
	"method_kind" text,
	"payment_id" uuid,
	"name" text,
	"description" text,
	"reason" text,
	"status" text NOT NULL,
	"status_date" timestamp with time zone NOT NULL,
	"manual" boolean DEFAULT false NOT NULL,
	"idempotency_key" text,
	"request_hash" text,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "refunds_id_check" CHECK ("refunds"."id" = "refunds"."entry_id"),
	CONSTRAINT "refunds_amount_check" CHECK ("refunds"."amount" > 0),
	CONSTRAINT "refunds_status_check" CHECK ("refunds"."status" in ('requested', 'completed'))
);
--> statement-breakpoint
ALTER TABLE "engine_clock" DROP CONSTRAINT "engine_clock_forward";--> statement-breakpoint
ALTER TABLE "allocations" DROP CONSTRAINT "allocations_amount_check";--> statement-breakpoint
ALTER TABLE "allocations" ALTER COLUMN "invoice_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "allocations" ADD COLUMN "debit_entry_id" uuid;--> statement-breakpoint
ALTER TABLE "allocations" ADD COLUMN "reverses" uuid;--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_entry_id_receivable_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."receivable_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_payment_method_id_payment_methods_id_fk" FOREIGN KEY ("payment_method_id") REFERENCES "public"."payment_methods"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "payments" ADD CONSTRAINT "payments_reversal_entry_id_receivable_entries_id_fk" FOREIGN KEY ("reversal_entry_id") REFERENCES "public"."receivable_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_entry_id_receivable_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."receivable_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_payment_method_id_payment_methods_id_fk" FOREIGN KEY ("payment_method_id") REFERENCES "public"."payment_methods"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "refunds" ADD CONSTRAINT "refunds_payment_id_payments_id_fk" FOREIGN KEY ("payment_id") REFERENCES "public"."payments"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "payment_methods_account_idx" ON "payment_methods" USING btree ("billing_account_id");--> statement-breakpoint
CREATE UNIQUE INDEX "payment_methods_default_idx" ON "payment_methods" USING btree ("billing_account_id") WHERE "payment_methods"."is_default" and "payment_methods"."state" = 'active';--> statement-breakpoint
CREATE UNIQUE INDEX "payments_entry_idx" ON "payments" USING btree ("entry_id");--> statement-breakpoint
CREATE UNIQUE INDEX "payments_key_idx" ON "payments" USING btree ("idempotency_key") WHERE "payments"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "payments_account_idx" ON "payments" USING btree ("billing_account_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "refunds_entry_idx" ON "refunds" USING btree ("entry_id");--> statement-breakpoint
CREATE UNIQUE INDEX "refunds_key_idx" ON "refunds" USING btree ("idempotency_key") WHERE "refunds"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "refunds_account_idx" ON "refunds" USING btree ("billing_account_id","created_at");--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_debit_entry_id_receivable_entries_id_fk" FOREIGN KEY ("debit_entry_id") REFERENCES "public"."receivable_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_reverses_allocations_id_fk" FOREIGN KEY ("reverses") REFERENCES "public"."allocations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "allocations_debit_idx" ON "allocations" USING btree ("debit_entry_id");--> statement-breakpoint
CREATE UNIQUE INDEX "allocations_reverses_idx" ON "allocations" USING btree ("reverses");--> statement-breakpoint
CREATE INDEX "receivable_entries_debits_idx" ON "receivable_entries" USING btree ("billing_account_id") WHERE "receivable_entries"."amount" > 0 and "receivable_entries"."invoice_id" is null;--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_target_check" CHECK (("allocations"."invoice_id" is null) <> ("allocations"."debit_entry_id" is null));--> statement-breakpoint
ALTER TABLE "allocations" ADD CONSTRAINT "allocations_amount_check" CHECK ("allocations"."amount" <> 0 and ("allocations"."amount" > 0) = ("allocations"."reverses" is null));--> statement-breakpoint
-- What was applied before this migration (credit notes on their invoices), as totals per side.
INSERT INTO "allocation_totals" ("side", "id", "applied")
  SELECT 'target', "invoice_id", sum("amount") FROM "allocations" WHERE "invoice_id" IS NOT NULL GROUP BY "invoice_id";--> statement-breakpoint
INSERT INTO "allocation_totals" ("side", "id", "applied")
  SELECT 'credit', "entry_id", sum("amount") FROM "allocations" GROUP BY "entry_id";--> statement-breakpoint
-- No allocation exceeds what its open item (an invoice, or a debit entry: a fee, a refund, a reversal) has open or
-- what its crediting entry has left: each side's total moves by the allocation in one upsert, under that row's lock,
-- and is checked after it (a sum over the growing table per row would depend on the plan a session cached while the
-- table was small). An undoing allocation is the exact opposite of the one it names, which it undoes once (unique
-- index).
CREATE OR REPLACE FUNCTION "allocations_within"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  target_id uuid := coalesce(NEW."invoice_id", NEW."debit_entry_id");
  target_account uuid;
  target_currency text;
  target_amount numeric;
  target_name text;
  entry record;
  undone record;
  total numeric;
BEGIN
  IF NEW."invoice_id" IS NOT NULL THEN
    SELECT "billing_account_id", "currency", "gross", "number" INTO target_account, target_currency, target_amount, target_name
      FROM "invoices" WHERE "id" = NEW."invoice_id";
  ELSE
    SELECT "billing_account_id", "currency", "amount", "kind" || ' ' || "id" INTO target_account, target_currency, target_amount, target_name
      FROM "receivable_entries" WHERE "id" = NEW."debit_entry_id";
  END IF;
  IF target_amount IS NULL OR target_amount <= 0 THEN
    RAISE EXCEPTION 'only what is owed is settled; % is not an open item', coalesce(target_name, target_id::text)
      USING ERRCODE = 'check_violation';
  END IF;
  SELECT "billing_account_id", "amount", "currency" INTO entry FROM "receivable_entries" WHERE "id" = NEW."entry_id";
  IF entry."amount" IS NULL OR entry."amount" >= 0 THEN
    RAISE EXCEPTION 'only a crediting entry (a payment, a credit note) is allocated; % is not one', NEW."entry_id"
      USING ERRCODE = 'check_violation';
  END IF;
  IF target_account <> NEW."billing_account_id" OR entry."billing_account_id" <> NEW."billing_account_id"
     OR target_currency <> entry."currency" THEN
    RAISE EXCEPTION 'an allocation joins an open item and an entry of one account in one currency' USING ERRCODE = 'check_violation';
  END IF;
  IF NEW."reverses" IS NOT NULL THEN
    SELECT * INTO undone FROM "allocations" WHERE "id" = NEW."reverses";
    IF undone."id" IS NULL OR undone."amount" <> -NEW."amount" OR undone."entry_id" <> NEW."entry_id"
       OR undone."invoice_id" IS DISTINCT FROM NEW."invoice_id" OR undone."debit_entry_id" IS DISTINCT FROM NEW."debit_entry_id" THEN
      RAISE EXCEPTION 'an undoing allocation is the exact opposite of the one it undoes' USING ERRCODE = 'check_violation';
    END IF;
  END IF;
  IF NEW."reverses" IS NOT NULL THEN
    -- An undoing allocation lowers totals that its original made (an upsert's insert row would be negative).
    UPDATE "allocation_totals" SET "applied" = "applied" + NEW."amount" WHERE "side" = 'target' AND "id" = target_id;
    UPDATE "allocation_totals" SET "applied" = "applied" + NEW."amount" WHERE "side" = 'credit' AND "id" = NEW."entry_id";
    RETURN NEW;
  END IF;
  INSERT INTO "allocation_totals" ("side", "id", "applied") VALUES ('target', target_id, NEW."amount")
    ON CONFLICT ("side", "id") DO UPDATE SET "applied" = "allocation_totals"."applied" + NEW."amount"
    RETURNING "applied" INTO total;
  IF total > target_amount THEN
    RAISE EXCEPTION 'allocation of % to % exceeds its open amount %', NEW."amount", target_name, target_amount - total + NEW."amount"
      USING ERRCODE = 'check_violation';
  END IF;
  INSERT INTO "allocation_totals" ("side", "id", "applied") VALUES ('credit', NEW."entry_id", NEW."amount")
    ON CONFLICT ("side", "id") DO UPDATE SET "applied" = "allocation_totals"."applied" + NEW."amount"
    RETURNING "applied" INTO total;
  IF total > -entry."amount" THEN
    RAISE EXCEPTION 'allocation of % exceeds what entry % has left, %', NEW."amount", NEW."entry_id", -entry."amount" - total + NEW."amount"
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
-- The totals are the trigger's alone: written with each allocation, never by hand.
CREATE TRIGGER "allocation_totals_immutable" BEFORE DELETE ON "allocation_totals" FOR EACH ROW EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "allocation_totals_no_truncate" BEFORE TRUNCATE ON "allocation_totals" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
-- A payment or refund never changes but for its status (and a payment's reversal, set once); neither is deleted.
CREATE FUNCTION "money_movement_immutable"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
  END IF;
  IF (to_jsonb(NEW) - 'status' - 'status_date' - 'reversal_entry_id' - 'reversal_reason' - 'reversal_note')
     IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'status_date' - 'reversal_entry_id' - 'reversal_reason' - 'reversal_note')
     OR (OLD."status" IN ('reversed', 'completed') AND NEW."status" IS DISTINCT FROM OLD."status") THEN
    RAISE EXCEPTION 'a % row changes only its status', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "payments_immutable" BEFORE UPDATE OR DELETE ON "payments" FOR EACH ROW EXECUTE FUNCTION "money_movement_immutable"();--> statement-breakpoint
CREATE TRIGGER "refunds_immutable" BEFORE UPDATE OR DELETE ON "refunds" FOR EACH ROW EXECUTE FUNCTION "money_movement_immutable"();--> statement-breakpoint
CREATE TRIGGER "payments_no_truncate" BEFORE TRUNCATE ON "payments" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();--> statement-breakpoint
CREATE TRIGGER "refunds_no_truncate" BEFORE TRUNCATE ON "refunds" FOR EACH STATEMENT EXECUTE FUNCTION "refuse_change"();
--> statement-breakpoint
-- Business time never goes back: an update may only grow the offset (a start before the wall clock is negative).
CREATE FUNCTION "engine_clock_forward"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW."offset_ms" < OLD."offset_ms" THEN
    RAISE EXCEPTION 'the engine clock only moves forward' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "engine_clock_forward" BEFORE UPDATE ON "engine_clock" FOR EACH ROW EXECUTE FUNCTION "engine_clock_forward"();

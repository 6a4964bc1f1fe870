CREATE TABLE "bill_run_items" (
	"run_id" uuid NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"period_end" date NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	"state" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"lease_owner" text,
	"lease_until" timestamp with time zone,
	"invoice_id" uuid,
	"amount" numeric(24, 6),
	"currency" text,
	"code" text,
	"reason" text,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "bill_run_items_run_id_billing_account_id_pk" PRIMARY KEY("run_id","billing_account_id"),
	CONSTRAINT "bill_run_items_state_check" CHECK ("bill_run_items"."state" in ('pending', 'invoiced', 'nothing', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "bill_runs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"bill_cycle_day" integer,
	"period_end" date,
	"state" text NOT NULL,
	"total" integer NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "bill_runs_kind_check" CHECK ("bill_runs"."kind" in ('cycle', 'accounts')),
	CONSTRAINT "bill_runs_state_check" CHECK ("bill_runs"."state" in ('running', 'completed', 'completedWithFailures')),
	CONSTRAINT "bill_runs_cycle_check" CHECK (("bill_runs"."kind" = 'cycle') = ("bill_runs"."bill_cycle_day" is not null and "bill_runs"."period_end" is not null))
);
--> statement-breakpoint
ALTER TABLE "bill_run_items" ADD CONSTRAINT "bill_run_items_run_id_bill_runs_id_fk" FOREIGN KEY ("run_id") REFERENCES "public"."bill_runs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "bill_run_items_pending_idx" ON "bill_run_items" USING btree ("run_id","state","due_at");--> statement-breakpoint
CREATE UNIQUE INDEX "bill_runs_cycle_idx" ON "bill_runs" USING btree ("bill_cycle_day","period_end") WHERE "bill_runs"."kind" = 'cycle';--> statement-breakpoint
CREATE INDEX "bill_runs_state_idx" ON "bill_runs" USING btree ("state");
CREATE TABLE "alerts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "alerts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"dedupe_key" text NOT NULL,
	"kind" text NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"product_id" uuid,
	"body" jsonb NOT NULL,
	"raised_at" timestamp with time zone NOT NULL,
	"published_at" timestamp with time zone,
	"messaged_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "ws_tickets" (
	"id" uuid PRIMARY KEY NOT NULL,
	"ticket_hash" text NOT NULL,
	"key_id" uuid NOT NULL,
	"role" text NOT NULL,
	"billing_account_id" uuid,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "alerts_dedupe_idx" ON "alerts" USING btree ("dedupe_key");--> statement-breakpoint
CREATE INDEX "alerts_account_idx" ON "alerts" USING btree ("billing_account_id","id");--> statement-breakpoint
CREATE INDEX "alerts_unpublished_idx" ON "alerts" USING btree ("id") WHERE "alerts"."published_at" is null;--> statement-breakpoint
CREATE INDEX "alerts_unmessaged_idx" ON "alerts" USING btree ("id") WHERE "alerts"."messaged_at" is null;--> statement-breakpoint
CREATE UNIQUE INDEX "ws_tickets_hash_idx" ON "ws_tickets" USING btree ("ticket_hash");--> statement-breakpoint
CREATE INDEX "ws_tickets_expiry_idx" ON "ws_tickets" USING btree ("expires_at");
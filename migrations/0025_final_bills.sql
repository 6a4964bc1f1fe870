DROP INDEX "invoices_cycle_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "invoices_period_idx" ON "invoices" USING btree ("billing_account_id","usage_period") WHERE "invoices"."kind" in ('cycle', 'final');--> statement-breakpoint
CREATE INDEX "invoices_message_idx" ON "invoices" USING btree ("message_id");
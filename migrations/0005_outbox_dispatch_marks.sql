ALTER TABLE "outbox_cursors" DISABLE ROW LEVEL SECURITY;--> statement-breakpoint
DROP TABLE "outbox_cursors" CASCADE;--> statement-breakpoint
ALTER TABLE "outbox_events" ADD COLUMN "dispatched_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "outbox_events_undispatched_idx" ON "outbox_events" USING btree ("id") WHERE "outbox_events"."dispatched_at" is null;
CREATE TABLE "inventory_resources" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"value" text collate "C" NOT NULL,
	"imsi" text,
	"category" text,
	"sealed_secrets" text,
	"batch" text,
	"state" text NOT NULL,
	"reservation_id" uuid,
	"reserved_until" timestamp with time zone,
	"assigned_to" text,
	"quarantine_until" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "inventory_resources_type_check" CHECK ("inventory_resources"."type" in ('SIMCard', 'MSISDN')),
	CONSTRAINT "inventory_resources_state_check" CHECK (("inventory_resources"."type" = 'SIMCard' and "inventory_resources"."state" in ('available', 'reserved', 'assigned', 'blocked', 'retired'))
        or ("inventory_resources"."type" = 'MSISDN' and "inventory_resources"."state" in ('available', 'reserved', 'assigned', 'quarantine'))),
	CONSTRAINT "inventory_resources_sim_columns_check" CHECK (("inventory_resources"."type" = 'SIMCard') = ("inventory_resources"."imsi" is not null and "inventory_resources"."sealed_secrets" is not null and "inventory_resources"."category" is null)),
	CONSTRAINT "inventory_resources_msisdn_value_check" CHECK ("inventory_resources"."type" <> 'MSISDN' or "inventory_resources"."value" ~ '^\+[1-9][0-9]{6,14}$'),
	CONSTRAINT "inventory_resources_reserved_check" CHECK (("inventory_resources"."state" = 'reserved') = ("inventory_resources"."reservation_id" is not null and "inventory_resources"."reserved_until" is not null)),
	CONSTRAINT "inventory_resources_assigned_check" CHECK ("inventory_resources"."state" <> 'assigned' or "inventory_resources"."assigned_to" is not null),
	CONSTRAINT "inventory_resources_quarantine_check" CHECK (("inventory_resources"."state" = 'quarantine') = ("inventory_resources"."quarantine_until" is not null))
);
--> statement-breakpoint
CREATE TABLE "customer_messages" (
	"id" uuid PRIMARY KEY NOT NULL,
	"customer_id" uuid NOT NULL,
	"channel" text NOT NULL,
	"recipient" text NOT NULL,
	"subject" text,
	"body" text NOT NULL,
	"reason" text NOT NULL,
	"status" text NOT NULL,
	"attempts" integer NOT NULL,
	"last_error" text,
	"created_at" timestamp with time zone NOT NULL,
	"sent_at" timestamp with time zone,
	CONSTRAINT "customer_messages_channel_check" CHECK ("customer_messages"."channel" in ('sms', 'email')),
	CONSTRAINT "customer_messages_status_check" CHECK ("customer_messages"."status" in ('pending', 'sent', 'failed', 'undelivered'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "inventory_resources_value_idx" ON "inventory_resources" USING btree ("type","value");--> statement-breakpoint
CREATE UNIQUE INDEX "inventory_resources_imsi_idx" ON "inventory_resources" USING btree ("imsi");--> statement-breakpoint
CREATE UNIQUE INDEX "inventory_resources_reservation_idx" ON "inventory_resources" USING btree ("reservation_id");--> statement-breakpoint
CREATE INDEX "inventory_resources_free_idx" ON "inventory_resources" USING btree ("type","state","value");--> statement-breakpoint
CREATE INDEX "customer_messages_customer_idx" ON "customer_messages" USING btree ("customer_id","created_at");
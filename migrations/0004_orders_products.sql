CREATE TABLE "cancel_product_orders" (
	"id" uuid PRIMARY KEY NOT NULL,
	"order_id" uuid NOT NULL,
	"state" text NOT NULL,
	"reason" text,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "product_orders" (
	"id" uuid PRIMARY KEY NOT NULL,
	"idempotency_key" text,
	"request_hash" text NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"customer_id" uuid,
	"state" text NOT NULL,
	"items" jsonb NOT NULL,
	"rejection" jsonb NOT NULL,
	"progress" jsonb NOT NULL,
	"failure_reason" text,
	"cancel_requested" boolean NOT NULL,
	"cancellation_reason" text,
	"created_by" uuid,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "product_orders_state_check" CHECK ("product_orders"."state" in ('acknowledged', 'rejected', 'inProgress', 'completed', 'failed', 'cancelled'))
);
--> statement-breakpoint
CREATE TABLE "one_time_charges" (
	"id" uuid PRIMARY KEY NOT NULL,
	"product_id" uuid NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"order_id" uuid NOT NULL,
	"price_id" text NOT NULL,
	"name" text NOT NULL,
	"amount" numeric(24, 6) NOT NULL,
	"currency" text NOT NULL,
	"tax_class" text NOT NULL,
	"offering_version" integer NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"billed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "product_history" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "product_history_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"product_id" uuid NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"from_status" text,
	"to_status" text NOT NULL,
	"reason" text NOT NULL,
	"order_id" uuid
);
--> statement-breakpoint
CREATE TABLE "products" (
	"id" uuid PRIMARY KEY NOT NULL,
	"billing_account_id" uuid NOT NULL,
	"customer_id" uuid NOT NULL,
	"offering_id" text NOT NULL,
	"offering_version" integer NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"parent_id" uuid,
	"status" text NOT NULL,
	"msisdn" text,
	"iccid" text,
	"currency" text NOT NULL,
	"prices" jsonb NOT NULL,
	"term" jsonb,
	"order_id" uuid NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"activated_at" timestamp with time zone,
	"terminated_at" timestamp with time zone,
	CONSTRAINT "products_status_check" CHECK ("products"."status" in ('created', 'pendingActive', 'active', 'suspended', 'pendingTerminate', 'terminated', 'aborted')),
	CONSTRAINT "products_kind_check" CHECK ("products"."kind" in ('plan', 'addon')),
	CONSTRAINT "products_line_check" CHECK (("products"."kind" = 'plan') = ("products"."msisdn" is not null and "products"."iccid" is not null))
);
--> statement-breakpoint
ALTER TABLE "cancel_product_orders" ADD CONSTRAINT "cancel_product_orders_order_id_product_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."product_orders"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "one_time_charges" ADD CONSTRAINT "one_time_charges_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "product_history" ADD CONSTRAINT "product_history_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "products" ADD CONSTRAINT "products_billing_account_id_billing_accounts_id_fk" FOREIGN KEY ("billing_account_id") REFERENCES "public"."billing_accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "products" ADD CONSTRAINT "products_parent_id_products_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."products"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "product_orders_idempotency_idx" ON "product_orders" USING btree ("idempotency_key");--> statement-breakpoint
CREATE INDEX "product_orders_account_idx" ON "product_orders" USING btree ("billing_account_id");--> statement-breakpoint
CREATE INDEX "product_orders_state_idx" ON "product_orders" USING btree ("state","updated_at");--> statement-breakpoint
CREATE UNIQUE INDEX "one_time_charges_once_idx" ON "one_time_charges" USING btree ("order_id","product_id","price_id");--> statement-breakpoint
CREATE INDEX "one_time_charges_account_idx" ON "one_time_charges" USING btree ("billing_account_id");--> statement-breakpoint
CREATE INDEX "product_history_product_idx" ON "product_history" USING btree ("product_id");--> statement-breakpoint
CREATE UNIQUE INDEX "products_live_msisdn_idx" ON "products" USING btree ("msisdn") WHERE "products"."kind" = 'plan' and "products"."status" not in ('terminated', 'aborted');--> statement-breakpoint
CREATE UNIQUE INDEX "products_live_iccid_idx" ON "products" USING btree ("iccid") WHERE "products"."kind" = 'plan' and "products"."status" not in ('terminated', 'aborted');--> statement-breakpoint
CREATE INDEX "products_account_idx" ON "products" USING btree ("billing_account_id");--> statement-breakpoint
CREATE INDEX "products_parent_idx" ON "products" USING btree ("parent_id");
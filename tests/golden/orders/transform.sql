{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine transform for feed orders: templates/transforms/merge_latest.sql.j2 and the ledger, in one transaction.
BEGIN;
-- StreamLine transform merge_latest for feed orders: upsert the latest row per key.
MERGE INTO "STREAMLINE"."MART"."ORDERS" AS t
USING (
  SELECT
    "ORDER_ID",
    "CUSTOMER_ID",
    "STATUS",
    "QUANTITY",
    "AMOUNT",
    "CURRENCY",
    "ORDERED_AT",
    "UPDATED_AT",
    "BATCH_ID"
  FROM "STREAMLINE"."RAW"."ORDERS"
  WHERE "BATCH_ID" = '{{ claim.batch_id }}'
    AND "ORDER_ID" IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY "ORDER_ID"
    ORDER BY "UPDATED_AT" DESC, "SOURCE_FILE" DESC, "SOURCE_ROW_NUMBER" DESC
  ) = 1
) AS s
ON t."ORDER_ID" = s."ORDER_ID"
WHEN MATCHED AND s."UPDATED_AT" >= t."UPDATED_AT" THEN UPDATE SET
  "CUSTOMER_ID" = s."CUSTOMER_ID",
  "STATUS" = s."STATUS",
  "QUANTITY" = s."QUANTITY",
  "AMOUNT" = s."AMOUNT",
  "CURRENCY" = s."CURRENCY",
  "ORDERED_AT" = s."ORDERED_AT",
  "UPDATED_AT" = s."UPDATED_AT",
  "BATCH_ID" = s."BATCH_ID",
  "MERGED_AT" = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT (
  "ORDER_ID",
  "CUSTOMER_ID",
  "STATUS",
  "QUANTITY",
  "AMOUNT",
  "CURRENCY",
  "ORDERED_AT",
  "UPDATED_AT",
  "BATCH_ID", "MERGED_AT"
) VALUES (
  s."ORDER_ID",
  s."CUSTOMER_ID",
  s."STATUS",
  s."QUANTITY",
  s."AMOUNT",
  s."CURRENCY",
  s."ORDERED_AT",
  s."UPDATED_AT",
  s."BATCH_ID", CURRENT_TIMESTAMP()
);
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'transformed',
  "TRANSFORM_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "TRANSFORMED_AT" = CURRENT_TIMESTAMP(),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND "RUN_ID" = {{ claim.ledger.run_id }};
COMMIT;

-- StreamLine load for feed orders: replace the batch's raw rows in one transaction.
BEGIN;
DELETE FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}';
COPY INTO "STREAMLINE"."RAW"."ORDERS" (
  "ORDER_ID",
  "CUSTOMER_ID",
  "STATUS",
  "QUANTITY",
  "AMOUNT",
  "CURRENCY",
  "ORDERED_AT",
  "UPDATED_AT",
  "BATCH_ID", "SOURCE_FILE", "SOURCE_ROW_NUMBER", "LOADED_AT"
)
FROM (
  SELECT
    $1,
    $2,
    $3,
    $4,
    $5,
    $6,
    $7,
    $8,
    '{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}', METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, CURRENT_TIMESTAMP()
  FROM @"STREAMLINE"."RAW"."ORDERS_STAGE"/processing/{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}/orders/
)
FILES = ({{ ti.xcom_pull(task_ids="claim", key="copy_files") }})
FILE_FORMAT = (FORMAT_NAME = '"STREAMLINE"."RAW"."ORDERS_CSV_FORMAT"')
ON_ERROR = ABORT_STATEMENT
TRUNCATECOLUMNS = FALSE
FORCE = TRUE;
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'loaded',
  "LOAD_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "LOADED_AT" = CURRENT_TIMESTAMP(),
  "ROWS_LOADED" = (SELECT COUNT(*) FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}'),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'orders' AND "BATCH_ID" = '{{ ti.xcom_pull(task_ids="claim", key="batch_id") }}';
COMMIT;

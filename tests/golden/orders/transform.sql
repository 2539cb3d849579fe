{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine transform for feed orders: templates/transforms/merge_latest.sql.j2, the checks and the ledger, in one
-- transaction: the mart changes only when every error-severity check passes.
BEGIN;
-- StreamLine transform merge_latest for feed orders: upsert the latest row per key. Rows with a NULL key or
-- ordering value never get here (the load quarantines them); of rows with the same ordering value
-- the one from the later file (by name), then the later row, wins, and it replaces a mart row
-- whose ordering value is the same or older.
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
WHEN MATCHED AND (t."UPDATED_AT" IS NULL OR s."UPDATED_AT" >= t."UPDATED_AT") THEN UPDATE SET
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
-- Checks of feed orders: a gate, one row per check (error-severity failures roll back).
SELECT 'row_count' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ >= 1 AS "PASSED", IFF(n.rows_ >= 1, 0, n.rows_) AS "FAILING_ROWS", 'the batch has ' || TO_VARCHAR(n.rows_) || ' rows in raw; expected at least 1' AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS n
UNION ALL
SELECT 'not_null__order_id__customer_id__status__ordered_at__updated_at' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", (SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") FROM "STREAMLINE"."RAW"."ORDERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND ("ORDER_ID" IS NULL OR "CUSTOMER_ID" IS NULL OR "STATUS" IS NULL OR "ORDERED_AT" IS NULL OR "UPDATED_AT" IS NULL) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1) AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("ORDER_ID" IS NULL OR "CUSTOMER_ID" IS NULL OR "STATUS" IS NULL OR "ORDERED_AT" IS NULL OR "UPDATED_AT" IS NULL)) AS n
UNION ALL
SELECT 'unique__order_id' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", 'e.g. ' || n.example AS "DETAIL"
FROM (
  SELECT CAST(COALESCE(SUM(d.copies), 0) AS INTEGER) AS rows_, MIN(d.example) AS example FROM (
    SELECT m."ORDER_ID", COUNT(*) AS copies, TO_VARCHAR(m."ORDER_ID") AS example
    FROM "STREAMLINE"."MART"."ORDERS" AS m
    JOIN (SELECT DISTINCT "ORDER_ID" FROM "STREAMLINE"."MART"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS b
      ON m."ORDER_ID" = b."ORDER_ID"
    GROUP BY m."ORDER_ID"
    HAVING COUNT(*) > 1
  ) AS d
) AS n
UNION ALL
SELECT 'accepted_values__status' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", (SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") || ': ' || '''' || TO_VARCHAR("STATUS") || '''' FROM "STREAMLINE"."RAW"."ORDERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND ("STATUS" NOT IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1) AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "STATUS" NOT IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled')) AS n
UNION ALL
SELECT 'range__amount' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", (SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") || ': ' || TO_VARCHAR("AMOUNT") FROM "STREAMLINE"."RAW"."ORDERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND ("AMOUNT" < 0) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1) AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."ORDERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("AMOUNT" < 0)) AS n
UNION ALL
SELECT 'references__customer_id' AS "STREAMLINE_CHECK", 'warn' AS "SEVERITY", n.rows_ <= 0.2 * n.all_ AS "PASSED", n.rows_ AS "FAILING_ROWS", TO_VARCHAR(n.rows_) || ' of ' || TO_VARCHAR(n.all_) || ' rows have no match; max_orphan_ratio 0.2; ' || COALESCE((SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") || ': ' || TO_VARCHAR(r."CUSTOMER_ID") FROM "STREAMLINE"."RAW"."ORDERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND (r."CUSTOMER_ID" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "STREAMLINE"."MART"."CUSTOMERS" AS p WHERE p."CUSTOMER_ID" = r."CUSTOMER_ID")) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1), '') AS "DETAIL"
FROM (
  SELECT COUNT(*) AS all_, COUNT(CASE WHEN r."CUSTOMER_ID" IS NOT NULL AND p."CUSTOMER_ID" IS NULL THEN 1 END) AS rows_
  FROM "STREAMLINE"."RAW"."ORDERS" AS r
  LEFT JOIN (SELECT DISTINCT "CUSTOMER_ID" FROM "STREAMLINE"."MART"."CUSTOMERS") AS p ON p."CUSTOMER_ID" = r."CUSTOMER_ID"
  WHERE r."BATCH_ID" = '{{ claim.batch_id }}'
) AS n

;
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

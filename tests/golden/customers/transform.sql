{%- set claim = ti.xcom_pull(task_ids="claim", key="claim") %}
-- StreamLine transform for feed customers: templates/transforms/merge_latest.sql.j2, the checks and the ledger, in one
-- transaction: the mart changes only when every error-severity check passes.
BEGIN;
-- StreamLine transform merge_latest for feed customers: upsert the latest row per key. Rows with a NULL key or
-- ordering value never get here (the load quarantines them); of rows with the same ordering value
-- the one from the later file (by name), then the later row, wins, and it replaces a mart row
-- whose ordering value is the same or older.
MERGE INTO "STREAMLINE"."MART"."CUSTOMERS" AS t
USING (
  SELECT
    "CUSTOMER_ID",
    "EMAIL",
    "FULL_NAME",
    "COUNTRY",
    "TIER",
    "CREATED_AT",
    "UPDATED_AT",
    "BATCH_ID"
  FROM "STREAMLINE"."RAW"."CUSTOMERS"
  WHERE "BATCH_ID" = '{{ claim.batch_id }}'
    AND "CUSTOMER_ID" IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (
    PARTITION BY "CUSTOMER_ID"
    ORDER BY "UPDATED_AT" DESC, "SOURCE_FILE" DESC, "SOURCE_ROW_NUMBER" DESC
  ) = 1
) AS s
ON t."CUSTOMER_ID" = s."CUSTOMER_ID"
WHEN MATCHED AND (t."UPDATED_AT" IS NULL OR s."UPDATED_AT" >= t."UPDATED_AT") THEN UPDATE SET
  "EMAIL" = s."EMAIL",
  "FULL_NAME" = s."FULL_NAME",
  "COUNTRY" = s."COUNTRY",
  "TIER" = s."TIER",
  "CREATED_AT" = s."CREATED_AT",
  "UPDATED_AT" = s."UPDATED_AT",
  "BATCH_ID" = s."BATCH_ID",
  "MERGED_AT" = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN INSERT (
  "CUSTOMER_ID",
  "EMAIL",
  "FULL_NAME",
  "COUNTRY",
  "TIER",
  "CREATED_AT",
  "UPDATED_AT",
  "BATCH_ID", "MERGED_AT"
) VALUES (
  s."CUSTOMER_ID",
  s."EMAIL",
  s."FULL_NAME",
  s."COUNTRY",
  s."TIER",
  s."CREATED_AT",
  s."UPDATED_AT",
  s."BATCH_ID", CURRENT_TIMESTAMP()
);
-- Checks of feed customers: a gate, one row per check (error-severity failures roll back).
SELECT 'row_count' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ >= 1 AS "PASSED", IFF(n.rows_ >= 1, 0, n.rows_) AS "FAILING_ROWS", 'the batch has ' || TO_VARCHAR(n.rows_) || ' rows in raw; expected at least 1' AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS n
UNION ALL
SELECT 'not_null__customer_id__created_at__updated_at' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", (SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") FROM "STREAMLINE"."RAW"."CUSTOMERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND ("CUSTOMER_ID" IS NULL OR "CREATED_AT" IS NULL OR "UPDATED_AT" IS NULL) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1) AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND ("CUSTOMER_ID" IS NULL OR "CREATED_AT" IS NULL OR "UPDATED_AT" IS NULL)) AS n
UNION ALL
SELECT 'unique__customer_id' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", 'e.g. ' || n.example AS "DETAIL"
FROM (
  SELECT CAST(COALESCE(SUM(d.copies), 0) AS INTEGER) AS rows_, MIN(d.example) AS example FROM (
    SELECT m."CUSTOMER_ID", COUNT(*) AS copies, TO_VARCHAR(m."CUSTOMER_ID") AS example
    FROM "STREAMLINE"."MART"."CUSTOMERS" AS m
    JOIN (SELECT DISTINCT "CUSTOMER_ID" FROM "STREAMLINE"."MART"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}') AS b
      ON m."CUSTOMER_ID" = b."CUSTOMER_ID"
    GROUP BY m."CUSTOMER_ID"
    HAVING COUNT(*) > 1
  ) AS d
) AS n
UNION ALL
SELECT 'accepted_values__tier' AS "STREAMLINE_CHECK", 'error' AS "SEVERITY", n.rows_ = 0 AS "PASSED", n.rows_ AS "FAILING_ROWS", (SELECT 'first: ' || r."SOURCE_FILE" || ', row ' || TO_VARCHAR(r."SOURCE_ROW_NUMBER") || ': ' || '''' || TO_VARCHAR("TIER") || '''' FROM "STREAMLINE"."RAW"."CUSTOMERS" AS r WHERE r."BATCH_ID" = '{{ claim.batch_id }}' AND ("TIER" NOT IN ('free', 'plus', 'pro')) ORDER BY r."SOURCE_FILE", r."SOURCE_ROW_NUMBER" LIMIT 1) AS "DETAIL"
FROM (SELECT COUNT(*) AS rows_ FROM "STREAMLINE"."RAW"."CUSTOMERS" WHERE "BATCH_ID" = '{{ claim.batch_id }}' AND "TIER" NOT IN ('free', 'plus', 'pro')) AS n

;
UPDATE "STREAMLINE"."RAW"."STREAMLINE_BATCHES" SET
  "STATUS" = 'transformed',
  "TRANSFORM_STARTED_AT" = CAST('{{ ti.start_date.isoformat() }}' AS TIMESTAMP_LTZ),
  "TRANSFORMED_AT" = CURRENT_TIMESTAMP(),
  "FAILED_STEP" = NULL,
  "ERROR" = NULL,
  "UPDATED_AT" = CURRENT_TIMESTAMP()
WHERE "FEED" = 'customers' AND "BATCH_ID" = '{{ claim.batch_id }}'
  AND "RUN_ID" = {{ claim.ledger.run_id }};
COMMIT;

# Names and ARNs built from inputs, so policies can refer to resources without dependency cycles
# (the KMS key policy names the lake bucket, whose encryption names the key).

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  lake_bucket     = coalesce(var.lake_bucket_name, "${var.name}-lake-${local.account_id}")
  lake_bucket_arn = "arn:${local.partition}:s3:::${local.lake_bucket}"
  # MWAA requires its source bucket's name to start with "airflow-".
  dag_bucket      = "airflow-${var.name}-${local.account_id}"
  dag_bucket_arn  = "arn:${local.partition}:s3:::${local.dag_bucket}"
  logs_bucket     = "${var.name}-access-logs-${local.account_id}"
  mwaa_env_arn    = "arn:${local.partition}:airflow:${var.region}:${local.account_id}:environment/${var.name}"
  mwaa_log_groups = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:airflow-${var.name}-*"

  # The lake folders Airflow writes (landing -> processing -> processed, quarantine, and the
  # claims registers), generated from streamline.layout into feeds.auto.tfvars.json. What
  # Snowflake may read is per feed: each feed's stage_folders (iam_snowflake.tf).
  lake_zones = var.lake_zones

  buffering = {
    for feed, _ in var.feeds : feed => {
      size_mb          = coalesce(try(var.firehose_buffering_overrides[feed].size_mb, null), var.firehose_buffering_size_mb)
      interval_seconds = coalesce(try(var.firehose_buffering_overrides[feed].interval_seconds, null), var.firehose_buffering_interval_seconds)
    }
  }

  # Connection ids the DAGs use. Warehouse connections must exist as secrets (created empty
  # here, filled by the operator); an AWS connection secret is optional: without one, the
  # amazon provider falls back to the execution role.
  snowflake_conn_ids = toset([for f in values(var.feeds) : f.snowflake_conn_id])
  conn_ids           = setunion(local.snowflake_conn_ids, [for f in values(var.feeds) : f.aws_conn_id])
  secret_prefix      = "airflow/connections"

  # Airflow Variables the DAGs read, served from Secrets Manager (values are not credentials).
  variable_prefix   = "airflow/variables"
  airflow_variables = { streamline_lake_bucket = local.lake_bucket }

  # Per feed, the role of its Snowflake storage integration. The ARNs are known before the roles
  # exist: Snowflake's CREATE STORAGE INTEGRATION needs them first.
  snowflake_role_arns   = { for feed, f in var.feeds : feed => "arn:${local.partition}:iam::${local.account_id}:role/${f.storage_role}" }
  create_snowflake_role = var.snowflake_iam_user_arn != null && var.snowflake_external_id != null
  snowflake_roles       = { for feed, f in var.feeds : feed => f if local.create_snowflake_role }

  # The feeds whose streams the edge role may put records into (iam_edge.tf).
  edge_feeds = var.edge_feeds == null ? keys(var.feeds) : distinct(var.edge_feeds)
}

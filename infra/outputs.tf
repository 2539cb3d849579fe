output "lake_bucket" {
  description = "The lake bucket: Airflow Variable streamline_lake_bucket, and STREAMLINE_LAKE_URL = s3://<this>."
  value       = aws_s3_bucket.lake.id
}

output "dag_bucket" {
  description = "MWAA's source bucket: `uv run streamline deploy --bucket <this> --sqs-url-prefix <sqs_url_prefix>`."
  value       = aws_s3_bucket.dags.id
}

output "mwaa_environment" {
  description = "Name of the MWAA environment (null until create_mwaa_environment is true)."
  value       = one(aws_mwaa_environment.streamline[*].name)
}

output "mwaa_webserver_url" {
  description = "Airflow UI of the environment."
  value       = one(aws_mwaa_environment.streamline[*].webserver_url)
}

output "mwaa_execution_role_arn" {
  description = "The role the DAG tasks run as."
  value       = aws_iam_role.mwaa.arn
}

output "kms_key_arn" {
  description = "The StreamLine key."
  value       = aws_kms_key.streamline.arn
}

output "firehose_streams" {
  description = "Feed -> Firehose delivery stream name (what the edge puts records into)."
  value       = { for feed, stream in aws_kinesis_firehose_delivery_stream.feed : feed => stream.name }
}

output "feed_queue_urls" {
  description = "Feed -> SQS queue URL of its landing notifications."
  value       = { for feed, queue in aws_sqs_queue.feed : feed => queue.url }
}

output "sqs_url_prefix" {
  description = "STREAMLINE_SQS_URL_PREFIX: a feed's queue URL is <this>/<queue name>."
  value       = "https://sqs.${var.region}.amazonaws.com/${local.account_id}"
}

output "connection_secrets" {
  description = "Secrets to fill with the Snowflake connection JSON (README, step 4)."
  value       = [for s in aws_secretsmanager_secret.connection : s.name]
}

output "snowflake_storage_role_arns" {
  description = "Feed -> STORAGE_AWS_ROLE_ARN of its Snowflake storage integration (known before the roles are created): `streamline infra-sql --storage-role-arns \"$(terraform output -json snowflake_storage_role_arns)\"`."
  value       = local.snowflake_role_arns
}

output "snowflake_storage_role_created" {
  description = "Whether the storage-integration roles exist yet (need snowflake_iam_user_arn and snowflake_external_id)."
  value       = local.create_snowflake_role
}

output "edge_role_arn" {
  description = "Role for edge hosts, when create_edge_role is true."
  value       = one(aws_iam_role.edge[*].arn)
}

output "edge_role_streams" {
  description = "Feed -> Firehose stream the edge role may put records into (edge_feeds; empty without the role)."
  value       = { for feed in local.edge_feeds : feed => aws_kinesis_firehose_delivery_stream.feed[feed].name if var.create_edge_role }
}

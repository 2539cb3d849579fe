# Inputs. `feeds` is generated from pipelines/ into feeds.auto.tfvars.json by
# `uv run streamline infra-vars`; everything else has a default or is set per environment
# (for example in a prod.tfvars passed with -var-file).

# ---------------------------------------------------------------------------------------------
# Feeds (generated: do not edit by hand)
# ---------------------------------------------------------------------------------------------

variable "feeds" {
  description = "Feed name -> what the infrastructure of that feed needs. Generated from pipelines/ by `uv run streamline infra-vars` into feeds.auto.tfvars.json; every per-feed resource is a for_each over this map."
  type = map(object({
    prefix            = string # the feed's folder in each lake zone: landing/<prefix>/ ...
    stream_name       = string # Firehose delivery stream: streamline-<feed, _ as ->
    queue_name        = string # SQS queue of the feed's S3 notifications (spec trigger.queue)
    dlq_name          = string # its dead-letter queue: <queue_name>-dlq
    trigger_mode      = string # poll or event (spec trigger.mode); queues exist for both
    compression       = string # Firehose compression_format: GZIP when the spec reads gzip
    dag_id            = string
    aws_conn_id       = string # Airflow connection ids the feed's DAG uses: their secrets
    snowflake_conn_id = string # under airflow/connections/ are the only ones MWAA may read
    raw_table         = string # database.schema.table, for reference
    mart_table        = string
    spec_file         = string
  }))

  validation {
    condition     = length(var.feeds) > 0
    error_message = "No feeds: run `uv run streamline infra-vars` to generate infra/feeds.auto.tfvars.json."
  }
  validation {
    condition     = alltrue([for f in values(var.feeds) : can(regex("^[a-z0-9][a-z0-9_/-]*$", f.prefix))])
    error_message = "Feed prefixes are lower-case path segments (the spec schema enforces this)."
  }
  validation {
    condition     = alltrue([for f in values(var.feeds) : contains(["GZIP", "UNCOMPRESSED"], f.compression)])
    error_message = "Feed compression is GZIP or UNCOMPRESSED."
  }
}

# ---------------------------------------------------------------------------------------------
# Naming, region, tags
# ---------------------------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name, and the MWAA environment's name."
  type        = string
  default     = "streamline"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,28}[a-z0-9]$", var.name))
    error_message = "name: 3-30 characters, lower-case letters, digits and -, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "us-east-1"
}

variable "tags" {
  description = "Extra tags on every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Lake bucket
# ---------------------------------------------------------------------------------------------

variable "lake_bucket_name" {
  description = "Name of the lake bucket (landing/, processing/, processed/, errors/). Default: <name>-lake-<account id>."
  type        = string
  default     = null
}

variable "processed_transition_days" {
  description = "Days after which objects under processed/ move to processed_transition_storage_class."
  type        = number
  default     = 30

  validation {
    condition     = var.processed_transition_days >= 30
    error_message = "S3 moves objects to STANDARD_IA or ONEZONE_IA no earlier than 30 days after creation."
  }
}

variable "processed_transition_storage_class" {
  description = "Storage class processed/ objects move to after processed_transition_days."
  type        = string
  default     = "STANDARD_IA"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"], var.processed_transition_storage_class)
    error_message = "Use an S3 lifecycle storage class: STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER or DEEP_ARCHIVE."
  }
}

variable "processed_expiration_days" {
  description = "Days after which objects under processed/ are deleted (the lake keeps no data forever). A batch can be reprocessed from processed/ until then."
  type        = number
  default     = 365

  validation {
    condition     = var.processed_expiration_days > var.processed_transition_days
    error_message = "processed_expiration_days must be greater than processed_transition_days."
  }
}

variable "errors_expiration_days" {
  description = "Days after which Firehose's failed deliveries under errors/ are deleted."
  type        = number
  default     = 90
}

variable "noncurrent_version_expiration_days" {
  description = "Days a replaced or deleted object version is kept (every claim/finalize move leaves one), in both buckets."
  type        = number
  default     = 30
}

variable "access_log_expiration_days" {
  description = "Days S3 server access logs of the lake and DAG buckets are kept."
  type        = number
  default     = 365
}

variable "log_retention_days" {
  description = "Retention of the Firehose CloudWatch log groups."
  type        = number
  default     = 365
}

# ---------------------------------------------------------------------------------------------
# Firehose buffering (not in the feed spec: a deployment choice, per environment)
# ---------------------------------------------------------------------------------------------

variable "firehose_buffering_size_mb" {
  description = "Firehose delivers a landing object when this many MiB are buffered (1-128), or when the interval passes."
  type        = number
  default     = 5

  validation {
    condition     = var.firehose_buffering_size_mb >= 1 && var.firehose_buffering_size_mb <= 128
    error_message = "Firehose buffering size is 1-128 MiB."
  }
}

variable "firehose_buffering_interval_seconds" {
  description = "Firehose delivers a landing object at least this often (0-900 s). Lower means lower latency and more, smaller files."
  type        = number
  default     = 60

  validation {
    condition     = var.firehose_buffering_interval_seconds >= 0 && var.firehose_buffering_interval_seconds <= 900
    error_message = "Firehose buffering interval is 0-900 seconds."
  }
}

variable "firehose_buffering_overrides" {
  description = "Per-feed buffering, feed name -> { size_mb, interval_seconds } (either may be omitted), over the two defaults above."
  type = map(object({
    size_mb          = optional(number)
    interval_seconds = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for feed in keys(var.firehose_buffering_overrides) : contains(keys(var.feeds), feed)])
    error_message = "firehose_buffering_overrides names a feed that is not in var.feeds."
  }
  validation {
    condition = alltrue([for o in values(var.firehose_buffering_overrides) :
      (o.size_mb == null ? true : o.size_mb >= 1 && o.size_mb <= 128) &&
      (o.interval_seconds == null ? true : o.interval_seconds >= 0 && o.interval_seconds <= 900)
    ])
    error_message = "Firehose buffering size is 1-128 MiB and interval 0-900 seconds."
  }
}

# ---------------------------------------------------------------------------------------------
# Feed queues
# ---------------------------------------------------------------------------------------------

variable "queue_message_retention_seconds" {
  description = "How long an S3 notification waits in a feed queue (poll-mode feeds never read theirs)."
  type        = number
  default     = 345600 # 4 days
}

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the feed queues."
  type        = number
  default     = 60
}

variable "dlq_max_receive_count" {
  description = "Receives after which a notification moves to the feed's dead-letter queue."
  type        = number
  default     = 5
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queues."
  type        = number
  default     = 1209600 # 14 days, the SQS maximum
}

# ---------------------------------------------------------------------------------------------
# MWAA
# ---------------------------------------------------------------------------------------------

variable "airflow_version" {
  description = "Airflow version of the MWAA environment: one MWAA offers, matching the `--constraint` line of the requirements file."
  type        = string
  default     = "3.0.6"
}

variable "mwaa_environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"

  validation {
    condition     = contains(["mw1.micro", "mw1.small", "mw1.medium", "mw1.large", "mw1.xlarge", "mw1.2xlarge"], var.mwaa_environment_class)
    error_message = "Use an MWAA environment class: mw1.micro, mw1.small, mw1.medium, mw1.large, mw1.xlarge or mw1.2xlarge."
  }
}

variable "mwaa_min_workers" {
  description = "Minimum number of MWAA workers."
  type        = number
  default     = 1
}

variable "mwaa_max_workers" {
  description = "Maximum number of MWAA workers."
  type        = number
  default     = 4
}

variable "mwaa_subnet_ids" {
  description = "Two private subnets, in two availability zones, of the VPC MWAA runs in (they need a route to S3, SQS, Secrets Manager, CloudWatch and Snowflake: NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.mwaa_subnet_ids) == 2
    error_message = "MWAA needs exactly two private subnets in different availability zones."
  }
}

variable "mwaa_security_group_ids" {
  description = "Security groups of the MWAA environment (1-5); one must allow all traffic between its own members."
  type        = list(string)

  validation {
    condition     = length(var.mwaa_security_group_ids) >= 1 && length(var.mwaa_security_group_ids) <= 5
    error_message = "MWAA takes 1-5 security groups."
  }
}

variable "mwaa_webserver_access_mode" {
  description = "PRIVATE_ONLY (the UI is reachable from the VPC only) or PUBLIC_ONLY."
  type        = string
  default     = "PRIVATE_ONLY"

  validation {
    condition     = contains(["PRIVATE_ONLY", "PUBLIC_ONLY"], var.mwaa_webserver_access_mode)
    error_message = "mwaa_webserver_access_mode is PRIVATE_ONLY or PUBLIC_ONLY."
  }
}

variable "mwaa_log_level" {
  description = "Level of the five MWAA log types sent to CloudWatch."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], var.mwaa_log_level)
    error_message = "mwaa_log_level is CRITICAL, ERROR, WARNING, INFO or DEBUG."
  }
}

variable "create_mwaa_environment" {
  description = "Create the MWAA environment. false for the first apply: create the buckets, run `streamline deploy`, then set the object versions below and true (one environment creation instead of a creation and an update)."
  type        = bool
  default     = true
}

variable "mwaa_bundle_prefix" {
  description = "Key prefix of the deploy bundle in the DAG bucket (`streamline deploy --prefix`): \"\" or ending in /."
  type        = string
  default     = ""

  validation {
    condition     = var.mwaa_bundle_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", var.mwaa_bundle_prefix))
    error_message = "mwaa_bundle_prefix is empty or a key prefix ending in /."
  }
}

variable "mwaa_requirements_s3_object_version" {
  description = "S3 object version of requirements.txt, as `streamline deploy` prints it. null: no requirements.txt (the DAGs cannot import without it)."
  type        = string
  default     = null
}

variable "mwaa_plugins_s3_object_version" {
  description = "S3 object version of plugins.zip (the StreamLine wheel), as `streamline deploy` prints it."
  type        = string
  default     = null
}

variable "mwaa_startup_script_s3_object_version" {
  description = "S3 object version of startup.sh, as `streamline deploy` prints it."
  type        = string
  default     = null
}

variable "airflow_configuration_options" {
  description = "Extra Airflow configuration options (section.key -> value). The secrets backend options are set by this module and win."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# Snowflake storage integration
# ---------------------------------------------------------------------------------------------

variable "snowflake_storage_integration" {
  description = "Name of the Snowflake storage integration (lower-case; the SQL quotes it upper-cased). Passed to Airflow as STREAMLINE_STORAGE_INTEGRATION."
  type        = string
  default     = "streamline_lake"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,127}$", var.snowflake_storage_integration))
    error_message = "Use lower-case letters, digits and _, starting with a letter or _."
  }
}

variable "snowflake_iam_user_arn" {
  description = "STORAGE_AWS_IAM_USER_ARN from `DESC INTEGRATION` in Snowflake. The storage-integration role is created only once this and snowflake_external_id are set."
  type        = string
  default     = null

  validation {
    condition     = var.snowflake_iam_user_arn == null ? true : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:user/.+$", var.snowflake_iam_user_arn))
    error_message = "snowflake_iam_user_arn is an IAM user ARN, arn:aws:iam::<12 digits>:user/...."
  }
}

variable "snowflake_external_id" {
  description = "STORAGE_AWS_EXTERNAL_ID from `DESC INTEGRATION` in Snowflake: the sts:ExternalId the role's trust requires."
  type        = string
  default     = null

  validation {
    condition     = var.snowflake_external_id == null ? true : length(var.snowflake_external_id) >= 2
    error_message = "snowflake_external_id is the value DESC INTEGRATION shows."
  }
}

# ---------------------------------------------------------------------------------------------
# Edge host role (optional)
# ---------------------------------------------------------------------------------------------

variable "create_edge_role" {
  description = "Create an IAM role (and instance profile) for edge hosts that may only put records into the feed streams."
  type        = bool
  default     = false
}

variable "edge_role_trusted_service" {
  description = "Service principal that may assume the edge role (EC2 by default)."
  type        = string
  default     = "ec2.amazonaws.com"
}

# The MWAA environment and its source bucket. `uv run streamline deploy --bucket <dag bucket>`
# uploads the bundle: dags/, and requirements.txt, plugins.zip (the framework wheel) and
# startup.sh at the bucket root. MWAA syncs dags/ by itself; the other three are pinned by S3
# object version, which deploy prints and the mwaa_*_s3_object_version variables take, so a new
# requirements.txt or wheel reaches the environment only through a reviewed `terraform apply`.

resource "aws_s3_bucket" "dags" {
  #checkov:skip=CKV_AWS_144:The DAG bucket is rebuilt from the repository by `streamline deploy`; replication adds nothing.
  #checkov:skip=CKV2_AWS_62:MWAA syncs the bucket itself; nothing consumes its events.
  bucket = local.dag_bucket
}

resource "aws_s3_bucket_versioning" "dags" {
  bucket = aws_s3_bucket.dags.id
  versioning_configuration {
    status = "Enabled" # required by MWAA: requirements, plugins and startup script are pinned by version
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.streamline.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "dags" {
  bucket                  = aws_s3_bucket.dags.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "dags" {
  bucket = aws_s3_bucket.dags.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_policy" "dags" {
  bucket     = aws_s3_bucket.dags.id
  policy     = data.aws_iam_policy_document.dag_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.dags]
}

data "aws_iam_policy_document" "dag_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [local.dag_bucket_arn, "${local.dag_bucket_arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_logging" "dags" {
  bucket        = aws_s3_bucket.dags.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "${local.dag_bucket}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "dags" {
  bucket = aws_s3_bucket.dags.id

  rule {
    id     = "old-versions"
    status = "Enabled"
    filter {}
    # Kept long enough to roll the environment back to a previous requirements/plugins version.
    noncurrent_version_expiration {
      noncurrent_days = max(var.noncurrent_version_expiration_days, 90)
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.dags]
}

# ---------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------

resource "aws_mwaa_environment" "streamline" {
  count              = var.create_mwaa_environment ? 1 : 0
  name               = var.name
  airflow_version    = var.airflow_version
  environment_class  = var.mwaa_environment_class
  min_workers        = var.mwaa_min_workers
  max_workers        = var.mwaa_max_workers
  execution_role_arn = aws_iam_role.mwaa.arn
  kms_key            = aws_kms_key.streamline.arn

  source_bucket_arn = aws_s3_bucket.dags.arn
  dag_s3_path       = "${var.mwaa_bundle_prefix}dags/"

  # Each file is configured once deploy has uploaded it and its version is set.
  requirements_s3_path             = var.mwaa_requirements_s3_object_version == null ? null : "${var.mwaa_bundle_prefix}requirements.txt"
  requirements_s3_object_version   = var.mwaa_requirements_s3_object_version
  plugins_s3_path                  = var.mwaa_plugins_s3_object_version == null ? null : "${var.mwaa_bundle_prefix}plugins.zip"
  plugins_s3_object_version        = var.mwaa_plugins_s3_object_version
  startup_script_s3_path           = var.mwaa_startup_script_s3_object_version == null ? null : "${var.mwaa_bundle_prefix}startup.sh"
  startup_script_s3_object_version = var.mwaa_startup_script_s3_object_version

  webserver_access_mode = var.mwaa_webserver_access_mode

  network_configuration {
    subnet_ids         = var.mwaa_subnet_ids
    security_group_ids = var.mwaa_security_group_ids
  }

  # Connections come from Secrets Manager under airflow/connections/<conn_id>, as in the local
  # stack, and the lake bucket Variable from airflow/variables/streamline_lake_bucket. The lookup
  # patterns keep every other id away from Secrets Manager: no billed lookups of names the
  # execution role may not read anyway. Config is not looked up there.
  airflow_configuration_options = merge(var.airflow_configuration_options, {
    "secrets.backend" = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    "secrets.backend_kwargs" = jsonencode({
      connections_prefix         = local.secret_prefix
      connections_lookup_pattern = "^(${join("|", sort(tolist(local.conn_ids)))})$"
      variables_prefix           = local.variable_prefix
      variables_lookup_pattern   = "^(${join("|", sort(keys(local.airflow_variables)))})$"
      config_prefix              = null
    })
    "core.load_examples" = "False"
  })

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = var.mwaa_log_level
    }
    scheduler_logs {
      enabled   = true
      log_level = var.mwaa_log_level
    }
    task_logs {
      enabled   = true
      log_level = var.mwaa_log_level
    }
    webserver_logs {
      enabled   = true
      log_level = var.mwaa_log_level
    }
    worker_logs {
      enabled   = true
      log_level = var.mwaa_log_level
    }
  }

  depends_on = [
    aws_iam_role_policy.mwaa,
    aws_s3_bucket_public_access_block.dags,
  ]
}

# One role per feed for that feed's Snowflake storage integration (`<integration>_<feed>`, made by
# `streamline infra-sql`): it reads the feed's own batch folders in processing/ and processed/ and
# nothing else, so USAGE on one feed's stage reads no other feed's files. The lake keys put the
# batch id before the prefix (processing/<BATCH_ID>/<prefix>/), so no S3 prefix holds just one
# feed's files: the role's resources are IAM wildcard patterns (stage_folders, generated from
# streamline.layout), `?` for each character of a batch id, because `*` would cross `/` into
# another feed's folders.
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
#
# Every role trusts only the IAM user Snowflake shows in `DESC INTEGRATION` (one per Snowflake
# account), with the external id the integrations were created with (STORAGE_AWS_EXTERNAL_ID).
# The user is known once an integration exists, and the integrations need the roles' ARNs first:
# the ARNs are an output of the first apply (local.snowflake_role_arns), and the roles are created
# on the apply that sets snowflake_iam_user_arn and snowflake_external_id (README, steps 3-5).
# https://docs.snowflake.com/en/user-guide/data-load-s3-config-storage-integration

data "aws_iam_policy_document" "snowflake_assume" {
  count = local.create_snowflake_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = [var.snowflake_iam_user_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.snowflake_external_id]
    }
  }
}

resource "aws_iam_role" "snowflake" {
  for_each             = local.snowflake_roles
  name                 = each.value.storage_role
  description          = "Snowflake storage integration ${var.snowflake_storage_integration}_${each.key}: reads processing/<batch>/${each.value.prefix}/ and processed/<batch>/${each.value.prefix}/ of the lake"
  assume_role_policy   = data.aws_iam_policy_document.snowflake_assume[0].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "snowflake" {
  for_each = var.feeds

  statement {
    sid       = "ReadOwnBatchFolders"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for folder in each.value.stage_folders : "${local.lake_bucket_arn}/${folder}*"]
  }

  statement {
    sid       = "ListOwnBatchFolders"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for folder in each.value.stage_folders : "${folder}*"]
    }
  }

  statement {
    sid       = "LocateLakeBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.lake_bucket_arn]
  }

  statement {
    sid       = "DecryptOwnBatchFolders"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.streamline.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
    # With S3 bucket keys (lake.tf) the context is the bucket ARN; without, the object ARN.
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values = concat(
        [local.lake_bucket_arn],
        [for folder in each.value.stage_folders : "${local.lake_bucket_arn}/${folder}*"],
      )
    }
  }
}

resource "aws_iam_role_policy" "snowflake" {
  for_each = aws_iam_role.snowflake
  name     = "read-own-batch-folders"
  role     = each.value.id
  policy   = data.aws_iam_policy_document.snowflake[each.key].json
}

# The role Snowflake's storage integration assumes to read the lake. It trusts only the IAM user
# Snowflake shows in `DESC INTEGRATION`, and only with the external id shown there. Both are known
# after the integration exists, and the integration needs this role's ARN first: the ARN is an
# output from the first apply (local.snowflake_role_arn), and the role is created on the apply
# that sets snowflake_iam_user_arn and snowflake_external_id (README, steps 3-5).

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
  count                = local.create_snowflake_role ? 1 : 0
  name                 = local.snowflake_role_name
  description          = "Snowflake storage integration ${var.snowflake_storage_integration}: reads processing/ and processed/ of the lake"
  assume_role_policy   = data.aws_iam_policy_document.snowflake_assume[0].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "snowflake" {
  statement {
    sid       = "ReadLoadableZones"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for zone in local.snowflake_zones : "${local.lake_bucket_arn}/${zone}/*"]
  }

  statement {
    sid       = "ListLoadableZones"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [for zone in local.snowflake_zones : "${zone}/*"]
    }
  }

  statement {
    sid       = "LocateLakeBucket"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.lake_bucket_arn]
  }

  statement {
    sid       = "DecryptLakeObjects"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.streamline.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "snowflake" {
  count  = local.create_snowflake_role ? 1 : 0
  name   = "read-loadable-zones"
  role   = aws_iam_role.snowflake[0].id
  policy = data.aws_iam_policy_document.snowflake.json
}

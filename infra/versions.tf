# Provider and Terraform pins. init/validate/plan need the provider from the registry; the static
# checks in tests/unit/test_infra.py (terraform fmt, python-hcl2, checkov) need none.
terraform {
  # 1.9 or later: variable validations below refer to other variables (var.feeds).
  required_version = ">= 1.9, < 2.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # State belongs in a remote backend in production; see README.md ("State").
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ "app" = "streamline", "managed-by" = "terraform" }, var.tags)
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

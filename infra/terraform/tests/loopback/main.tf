# Test-only root: the same stack as envs/* (modules/lesionops, EKS off) with throwaway settings, applied against
# an AWS emulator by tests/infra/test_terraform.py. Endpoints and fake credentials come from the standard env
# vars (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); the only emulator-specific switch (path-style addressing) is
# a variable here and stays out of modules/ and envs/.

provider "aws" {
  region            = var.region
  s3_use_path_style = var.s3_use_path_style
}

data "aws_caller_identity" "current" {}

module "lesionops" {
  source = "../../modules/lesionops"

  name_prefix                        = var.name_prefix
  environment                        = "test"
  noncurrent_version_expiration_days = 3
  abort_incomplete_multipart_days    = 2
  artifacts_transition_days          = 30
  kms_deletion_window_days           = 7
  ecr_keep_images                    = 5
  force_destroy                      = true
  trusted_principal_arns             = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
}

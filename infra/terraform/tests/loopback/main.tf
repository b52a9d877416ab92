# Test-only root: the storage, ECR and IAM modules wired the way envs/* wire them, applied against an AWS
# emulator by tests/infra/test_terraform.py. Endpoints and fake credentials come from the standard env vars
# (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); the only emulator-specific switch
# (path-style addressing) is a variable here and stays out of modules/ and envs/.

provider "aws" {
  region            = var.region
  s3_use_path_style = var.s3_use_path_style
}

module "storage" {
  source = "../../modules/storage"

  name_prefix                        = var.name_prefix
  environment                        = "test"
  noncurrent_version_expiration_days = 3
  abort_incomplete_multipart_days    = 2
  artifacts_transition_days          = 30
  kms_deletion_window_days           = 7
  force_destroy                      = true
}

module "ecr" {
  source = "../../modules/ecr"

  repository_name = "${var.name_prefix}-test/lesionops"
  keep_images     = 5
  force_delete    = true
}

data "aws_caller_identity" "current" {}

module "iam" {
  source = "../../modules/iam"

  name_prefix              = var.name_prefix
  environment              = "test"
  data_bucket_arn          = module.storage.bucket_arns["data"]
  artifacts_bucket_arn     = module.storage.bucket_arns["artifacts"]
  dvc_bucket_arn           = module.storage.bucket_arns["dvc"]
  serving_artifacts_prefix = "mlflow/"
  kms_key_arn              = module.storage.kms_key_arn
  ecr_repository_arn       = module.ecr.repository_arn
  trusted_principal_arns   = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
}

# LesionOps dev: the whole stack (modules/lesionops) with dev's values. Credentials, profile and endpoints come
# from the standard AWS environment/config, never from here.

locals {
  environment = "dev"
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { Project = "lesionops", Environment = local.environment, ManagedBy = "terraform" })
  }
}

module "lesionops" {
  source = "../../modules/lesionops"

  name_prefix = var.name_prefix
  environment = local.environment

  # Short undo windows and cheap cleanup: nothing in dev is the system of record.
  noncurrent_version_expiration_days = 14
  artifacts_transition_days          = null
  kms_deletion_window_days           = 7
  ecr_keep_images                    = 10
  access_log_bucket                  = var.access_log_bucket

  trusted_principal_arns = var.trusted_principal_arns

  # Off unless asked for: roles are then assumed by trusted_principal_arns.
  enable_eks               = var.enable_eks
  eks_subnet_ids           = var.eks_subnet_ids
  eks_admin_principal_arns = var.eks_admin_principal_arns
  eks_log_retention_days   = 365
  eks_cpu_node_count       = { min = 1, desired = 2, max = 3 }
  eks_gpu_node_count       = { min = 0, desired = 0, max = 2 }
}

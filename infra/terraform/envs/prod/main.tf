# LesionOps prod: the whole stack (modules/lesionops) with prod's values. Credentials, profile and endpoints
# come from the standard AWS environment/config, never from here.

locals {
  environment = "prod"
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

  # A long undo window for raw images and models, old artifacts to infrequent access, more images kept.
  noncurrent_version_expiration_days = 180
  artifacts_transition_days          = 90
  kms_deletion_window_days           = 30
  ecr_keep_images                    = 100
  access_log_bucket                  = var.access_log_bucket

  trusted_principal_arns = var.trusted_principal_arns

  # Kubeflow on EKS, roles trusted through IRSA; the API endpoint stays private.
  enable_eks               = var.enable_eks
  eks_subnet_ids           = var.eks_subnet_ids
  eks_admin_principal_arns = var.eks_admin_principal_arns
  eks_log_retention_days   = 731
  eks_cpu_node_count       = { min = 2, desired = 3, max = 6 }
  eks_gpu_node_count       = { min = 0, desired = 0, max = 2 }
}

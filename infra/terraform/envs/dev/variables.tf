# What a user of dev sets in terraform.tfvars, the required ones first. Dev's sizes and retention are in main.tf;
# every other knob of the stack is a variable of modules/lesionops, set in main.tf's module call.

variable "name_prefix" {
  type        = string
  description = "Globally unique prefix of bucket, role and repository names (e.g. <org>-lesionops); buckets become <name_prefix>-dev-{data,artifacts,dvc}."
}

variable "trusted_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume the pipeline and serving roles (e.g. the CI role or the node role of an existing Kubeflow cluster); dev needs at least one unless enable_eks is true."
  default     = []
}

variable "region" {
  type        = string
  description = "AWS region of every resource (data residency of the clinical images is decided here)."
  default     = "eu-west-1"
}

variable "access_log_bucket" {
  type        = string
  description = "Existing central bucket receiving S3 server access logs of the three buckets; null (dev's usual choice) disables them."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (cost centre, data classification, owner)."
  default     = {}
}

variable "enable_eks" {
  type        = bool
  description = "Create a dev EKS cluster (CPU + GPU node groups) and trust its service accounts through IRSA instead of trusted_principal_arns."
  default     = false
}

variable "eks_subnet_ids" {
  type        = list(string)
  description = "Private subnets (two or more availability zones) of an existing VPC for EKS; only read, and then required, when enable_eks is true."
  default     = []
}

variable "eks_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users given cluster-admin on the dev cluster (besides the identity running terraform)."
  default     = []
}

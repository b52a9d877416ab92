# What a user of prod sets in terraform.tfvars, the required ones first. Prod's sizes and retention are in main.tf;
# every other knob of the stack is a variable of modules/lesionops, set in main.tf's module call.

variable "name_prefix" {
  type        = string
  description = "Globally unique prefix of bucket, role and repository names (e.g. <org>-lesionops); buckets become <name_prefix>-prod-{data,artifacts,dvc}."
}

variable "eks_subnet_ids" {
  type        = list(string)
  description = "Private subnets (two or more availability zones) of an existing VPC with a NAT or VPC endpoints for ECR, S3 and STS; prod runs on EKS, so they are required unless enable_eks is false."
  default     = []
}

variable "eks_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users given cluster-admin on the prod cluster (besides the identity running terraform), e.g. the platform team's role."
  default     = []
}

variable "access_log_bucket" {
  type        = string
  description = "Existing central bucket receiving S3 server access logs of the three buckets (it must accept S3 log delivery); set it in prod, or record access with CloudTrail S3 data events."
  default     = null
}

variable "region" {
  type        = string
  description = "AWS region of every resource (data residency of the clinical images is decided here)."
  default     = "eu-west-1"
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (cost centre, data classification, owner)."
  default     = {}
}

variable "enable_eks" {
  type        = bool
  description = "Create the prod EKS cluster and trust its service accounts through IRSA; false runs prod on an existing Kubeflow cluster whose principals go in trusted_principal_arns."
  default     = true
}

variable "trusted_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume the pipeline and serving roles when enable_eks is false (e.g. the node role of an existing Kubeflow cluster)."
  default     = []
}

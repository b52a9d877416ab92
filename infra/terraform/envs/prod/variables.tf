variable "region" {
  type        = string
  description = "AWS region of every resource (data residency of the clinical images is decided here)."
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as eu-west-1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Globally unique prefix of bucket, role and repository names (e.g. <org>-lesionops); buckets become <name_prefix>-prod-{data,artifacts,dvc}."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 lowercase letters, digits and hyphens, starting and ending with a letter or digit."
  }
}

variable "trusted_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume the pipeline and serving roles when enable_eks is false (e.g. the CI role or the node role of an existing Kubeflow cluster)."
  default     = []
}

variable "access_log_bucket" {
  type        = string
  description = "Existing central bucket receiving S3 server access logs of the three buckets; null disables them (CloudTrail data events are the alternative)."
  default     = null
}

variable "enable_eks" {
  type        = bool
  description = "Create an EKS cluster (CPU + GPU node groups) and trust its service accounts through IRSA instead of trusted_principal_arns."
  default     = true
}

variable "eks_kubernetes_version" {
  type        = string
  description = "Kubernetes version of the EKS cluster when enable_eks is true."
  default     = "1.33"
}

variable "eks_subnet_ids" {
  type        = list(string)
  description = "Private subnets (two or more availability zones) of an existing VPC for EKS; required when enable_eks is true."
  default     = []

  validation {
    condition     = !var.enable_eks || length(var.eks_subnet_ids) >= 2
    error_message = "enable_eks = true needs at least two private subnet IDs in eks_subnet_ids."
  }
}

variable "eks_endpoint_public_access" {
  type        = bool
  description = "Expose the EKS API endpoint publicly (only to eks_public_access_cidrs); the private endpoint is always on."
  default     = false
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach a public EKS API endpoint."
  default     = []
}

variable "eks_admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users given cluster-admin on EKS (besides the identity running terraform)."
  default     = []
}

variable "eks_gpu_instance_types" {
  type        = list(string)
  description = "Instance types of the GPU node group."
  default     = ["g5.xlarge"]
}

variable "eks_gpu_node_count" {
  type        = object({ min = number, desired = number, max = number })
  description = "Size of the GPU node group (min 0: scale to zero between trainings)."
  default     = { min = 0, desired = 0, max = 2 }
}

variable "pipeline_service_accounts" {
  type        = list(string)
  description = "namespace:name of the Kubernetes service accounts that run pipeline steps (IRSA)."
  default     = ["kubeflow:pipeline-runner"]
}

variable "serving_service_accounts" {
  type        = list(string)
  description = "namespace:name of the Kubernetes service accounts of the serving deployment (IRSA)."
  default     = ["lesionops:lesionops-serving"]
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (cost centre, data classification, owner)."
  default     = {}
}

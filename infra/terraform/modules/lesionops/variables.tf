variable "name_prefix" {
  type        = string
  description = "Globally unique prefix of bucket, role, repository and cluster names (e.g. <org>-lesionops); names become <name_prefix>-<environment>-..."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, staging, prod, test): part of every name and of the KMS key descriptions."
}

# Storage: how long mistakes can be undone and what old data costs. No defaults: each environment states its own.

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days a replaced or deleted object version stays in the buckets (the undo window for raw images, DVC cache and MLflow artifacts)."
}

variable "abort_incomplete_multipart_days" {
  type        = number
  description = "Days after which S3 aborts incomplete multipart uploads in the buckets."
  default     = 7
}

variable "artifacts_transition_days" {
  type        = number
  description = "Days after which artifacts (pipeline outputs, old MLflow runs) move to STANDARD_IA; null keeps them in STANDARD."
  default     = null
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period (7-30 days) before the storage KMS key is deleted after a destroy; afterwards its objects are unreadable."
}

variable "access_log_bucket" {
  type        = string
  description = "Existing central bucket receiving S3 server access logs of the three buckets; null disables them (CloudTrail data events are the alternative)."
  default     = null
}

variable "ecr_keep_images" {
  type        = number
  description = "How many LesionOps images the ECR lifecycle policy keeps (tags are immutable: every release is a new image)."
}

variable "force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete non-empty buckets (every object version) and a repository holding images. Only for throwaway environments."
  default     = false
}

# Who may use the roles.

variable "trusted_principal_arns" {
  type        = list(string)
  description = "IAM principals allowed to assume the pipeline and serving roles when enable_eks is false (e.g. the CI role or the node role of an existing Kubeflow cluster)."
  default     = []
}

variable "pipeline_service_accounts" {
  type        = list(string)
  description = "namespace:name of the Kubernetes service accounts that run pipeline steps (IRSA, when enable_eks)."
  default     = ["kubeflow:pipeline-runner"]
}

variable "serving_service_accounts" {
  type        = list(string)
  description = "namespace:name of the Kubernetes service accounts of the serving deployment (IRSA, when enable_eks)."
  default     = ["lesionops:lesionops-serving"]
}

# EKS: only read when enable_eks is true.

variable "enable_eks" {
  type        = bool
  description = "Create an EKS cluster (CPU + GPU node groups) and trust its service accounts through IRSA instead of trusted_principal_arns."
  default     = false
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

variable "eks_kubernetes_version" {
  type        = string
  description = "Kubernetes version of the EKS cluster and its node groups."
  default     = "1.33"
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

variable "eks_log_retention_days" {
  type        = number
  description = "Retention of the EKS control-plane logs in CloudWatch (a value CloudWatch Logs accepts)."
  default     = 365
}

variable "eks_cpu_node_count" {
  type        = object({ min = number, desired = number, max = number })
  description = "Size of the CPU node group (Kubeflow, MLflow, serving, CPU pipeline steps)."
  default     = { min = 2, desired = 2, max = 4 }
}

variable "eks_gpu_instance_types" {
  type        = list(string)
  description = "Instance types of the GPU node group (NVIDIA GPUs only)."
  default     = ["g5.xlarge"]
}

variable "eks_gpu_node_count" {
  type        = object({ min = number, desired = number, max = number })
  description = "Size of the GPU node group (min 0: scale to zero between trainings)."
  default     = { min = 0, desired = 0, max = 2 }
}

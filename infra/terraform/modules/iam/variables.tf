variable "name_prefix" {
  type        = string
  description = "Prefix of role and policy names; roles are named <name_prefix>-<environment>-pipeline and -serving."

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{1,38}[a-zA-Z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-40 letters, digits or hyphens, starting and ending with a letter or digit."
  }
}

variable "environment" {
  type        = string
  description = "Environment name (dev, staging, prod); part of role and policy names."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lowercase letters or digits, starting with a letter."
  }
}

variable "data_bucket_arn" {
  type        = string
  description = "ARN of the raw-data bucket: the pipeline role may read it, the serving role gets nothing."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]{3,63}$", var.data_bucket_arn))
    error_message = "data_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }
}

variable "artifacts_bucket_arn" {
  type        = string
  description = "ARN of the artifacts bucket (KFP pipeline root + MLflow artifacts): read/write for the pipeline, read of serving_artifacts_prefix for serving."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]{3,63}$", var.artifacts_bucket_arn))
    error_message = "artifacts_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }
}

variable "dvc_bucket_arn" {
  type        = string
  description = "ARN of the DVC remote bucket: read/write for the pipeline role."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]{3,63}$", var.dvc_bucket_arn))
    error_message = "dvc_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::name)."
  }
}

variable "serving_artifacts_prefix" {
  type        = string
  description = "Key prefix in the artifacts bucket the serving role may read (where MLflow stores model artifacts, i.e. the path of the MLflow artifact root)."
  default     = "mlflow/"

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*/$", var.serving_artifacts_prefix))
    error_message = "serving_artifacts_prefix must be a non-empty key prefix ending in '/' and not starting with '/', e.g. mlflow/."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the buckets (the storage module's key); the only key the roles may use."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:region:account:key/id), not an alias."
  }
}

variable "ecr_repository_arn" {
  type        = string
  description = "ARN of the LesionOps ECR repository the pipeline role may pull from."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", var.ecr_repository_arn))
    error_message = "ecr_repository_arn must be an ECR repository ARN (arn:aws:ecr:region:account:repository/name)."
  }
}

variable "use_irsa" {
  type        = bool
  description = "Trust the EKS OIDC provider (IAM Roles for Service Accounts) instead of trusted_principal_arns. A plain bool so that the trust policy's shape is known at plan time, before the cluster exists."
  default     = false
}

variable "oidc_provider_arn" {
  type        = string
  description = "ARN of the EKS cluster's IAM OIDC provider (arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID); required when use_irsa is true."
  default     = null

  validation {
    condition     = var.oidc_provider_arn == null ? true : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be null or an IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/ISSUER)."
  }
}

variable "pipeline_service_accounts" {
  type        = list(string)
  description = "Kubernetes service accounts (namespace:name) that may assume the pipeline role through IRSA; Kubeflow Pipelines runs steps as pipeline-runner in standalone installs, default-editor in profile namespaces."
  default     = ["kubeflow:pipeline-runner"]

  validation {
    condition     = length(var.pipeline_service_accounts) > 0 && alltrue([for sa in var.pipeline_service_accounts : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", sa))])
    error_message = "pipeline_service_accounts must be a non-empty list of namespace:name Kubernetes service accounts (no wildcards)."
  }
}

variable "serving_service_accounts" {
  type        = list(string)
  description = "Kubernetes service accounts (namespace:name) that may assume the serving role through IRSA."
  default     = ["lesionops:lesionops-serving"]

  validation {
    condition     = length(var.serving_service_accounts) > 0 && alltrue([for sa in var.serving_service_accounts : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", sa))])
    error_message = "serving_service_accounts must be a non-empty list of namespace:name Kubernetes service accounts (no wildcards)."
  }
}

variable "trusted_principal_arns" {
  type        = list(string)
  description = "IAM principals (roles, users or account roots) that may assume both roles with sts:AssumeRole when use_irsa is false, e.g. a CI role or the node role of a self-managed Kubeflow."
  default     = []

  validation {
    condition     = alltrue([for arn in var.trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/.+|user/.+)$", arn))])
    error_message = "trusted_principal_arns must hold IAM role, user or account-root ARNs (arn:aws:iam::123456789012:role/name); wildcards are not allowed."
  }
}

variable "permissions_boundary_arn" {
  type        = string
  description = "Optional IAM permissions boundary attached to both roles (many organisations require one); null attaches none."
  default     = null
}

variable "max_session_duration_s" {
  type        = number
  description = "Maximum session length of the roles in seconds; a training run that outlives it re-assumes the role through the SDK."
  default     = 3600

  validation {
    condition     = var.max_session_duration_s >= 3600 && var.max_session_duration_s <= 43200
    error_message = "max_session_duration_s must be between 3600 and 43200 seconds (IAM's range)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}

variable "cluster_name" {
  type        = string
  description = "Name of the EKS cluster; also prefixes its IAM roles, KMS alias, node groups and log group."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,37}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and hold at most 38 letters, digits or hyphens (IAM role names append suffixes)."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version of the control plane and node groups. The AL2 AMI types only go up to 1.32; the default AL2023 ones cover current versions."
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must be a minor version such as 1.32."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (in at least two availability zones) of an existing VPC for the control plane ENIs and the nodes; they need a NAT or VPC endpoints for ECR, S3 and STS."

  validation {
    condition     = length(var.subnet_ids) >= 2 && alltrue([for id in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "subnet_ids must list at least two subnet IDs (subnet-...) in different availability zones; EKS refuses fewer."
  }
}

variable "endpoint_public_access" {
  type        = bool
  description = "Expose the Kubernetes API endpoint publicly (restricted to public_access_cidrs). The private endpoint is always on."
  default     = false
}

variable "public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the public API endpoint when endpoint_public_access is true; 0.0.0.0/0 is refused."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.public_access_cidrs : can(cidrnetmask(cidr)) && cidr != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be IPv4 CIDR blocks other than 0.0.0.0/0."
  }

  validation {
    condition     = !var.endpoint_public_access || length(var.public_access_cidrs) > 0
    error_message = "endpoint_public_access = true needs at least one CIDR in public_access_cidrs; EKS would otherwise open the endpoint to 0.0.0.0/0."
  }
}

variable "admin_principal_arns" {
  type        = list(string)
  description = "IAM roles or users granted cluster-admin through EKS access entries, in addition to the identity that creates the cluster."
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$", arn))])
    error_message = "admin_principal_arns must hold IAM role or user ARNs."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the control-plane (API, audit, authenticator) logs in CloudWatch."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period before the cluster's KMS key (Kubernetes secrets, control-plane logs) is deleted after a destroy."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "cpu_instance_types" {
  type        = list(string)
  description = "Instance types of the CPU node group (Kubeflow, MLflow, serving, CPU pipeline steps)."
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) > 0
    error_message = "cpu_instance_types must name at least one instance type."
  }
}

variable "cpu_node_count" {
  type        = object({ min = number, desired = number, max = number })
  description = "Size of the CPU node group: min <= desired <= max, min >= 1 (Kubeflow's own services need a node)."
  default     = { min = 2, desired = 2, max = 4 }

  validation {
    condition     = var.cpu_node_count.min >= 1 && var.cpu_node_count.min <= var.cpu_node_count.desired && var.cpu_node_count.desired <= var.cpu_node_count.max
    error_message = "cpu_node_count needs 1 <= min <= desired <= max."
  }
}

variable "gpu_instance_types" {
  type        = list(string)
  description = "Instance types of the GPU node group (training steps); each needs an NVIDIA GPU."
  default     = ["g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g[0-9]+[a-z]*|p[0-9]+[a-z]*)\\.", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU instance families (g4dn, g5, g6, p3, p4d, p5, ...)."
  }
}

variable "gpu_node_count" {
  type        = object({ min = number, desired = number, max = number })
  description = "Size of the GPU node group: min 0 lets it scale to zero between trainings (with a cluster autoscaler / Karpenter)."
  default     = { min = 0, desired = 0, max = 2 }

  validation {
    condition     = var.gpu_node_count.min >= 0 && var.gpu_node_count.min <= var.gpu_node_count.desired && var.gpu_node_count.desired <= var.gpu_node_count.max && var.gpu_node_count.max >= 1
    error_message = "gpu_node_count needs 0 <= min <= desired <= max and max >= 1."
  }
}

variable "gpu_ami_type" {
  type        = string
  description = "EKS AMI type of the GPU nodes (NVIDIA driver + container toolkit preinstalled): AL2023_x86_64_NVIDIA, or AL2_x86_64_GPU for Kubernetes <= 1.32 (AL2 EKS AMIs stopped being published in Nov 2025)."
  default     = "AL2023_x86_64_NVIDIA"

  validation {
    condition     = contains(["AL2_x86_64_GPU", "AL2023_x86_64_NVIDIA"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be AL2_x86_64_GPU or AL2023_x86_64_NVIDIA."
  }
}

variable "cpu_ami_type" {
  type        = string
  description = "EKS AMI type of the CPU nodes."
  default     = "AL2023_x86_64_STANDARD"

  validation {
    condition     = contains(["AL2_x86_64", "AL2023_x86_64_STANDARD", "BOTTLEROCKET_x86_64"], var.cpu_ami_type)
    error_message = "cpu_ami_type must be AL2_x86_64, AL2023_x86_64_STANDARD or BOTTLEROCKET_x86_64."
  }
}

variable "node_disk_size_gb" {
  type        = number
  description = "Root volume size of every node in GiB (gp3, encrypted); GPU images with CUDA are large."
  default     = 100

  validation {
    condition     = var.node_disk_size_gb >= 20 && var.node_disk_size_gb <= 16384
    error_message = "node_disk_size_gb must be between 20 and 16384."
  }
}

variable "metadata_hop_limit" {
  type        = number
  description = "IMDSv2 hop limit on the nodes: 1 keeps pods (which get credentials through IRSA) away from the node role; 2 if an add-on in a pod network needs IMDS."
  default     = 1

  validation {
    condition     = contains([1, 2], var.metadata_hop_limit)
    error_message = "metadata_hop_limit must be 1 or 2."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource of the module (on top of the provider's default_tags)."
  default     = {}
}

terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # State stays local until a bucket for it exists. For a team, create that bucket once (versioned,
  # encrypted, outside this configuration) and uncomment; `use_lockfile` is S3-native locking (Terraform >= 1.10):
  #
  # backend "s3" {
  #   bucket       = "ORG-terraform-state"
  #   key          = "lesionops/prod/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

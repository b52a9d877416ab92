output "lesionops" {
  description = "Every output of the stack (modules/lesionops/outputs.tf) as one object: `terraform output -json lesionops`."
  value       = module.lesionops
}

output "lesionops_params" {
  description = "params.yaml values pointing LesionOps at this environment (merge into the mlflow and kubeflow sections)."
  value       = module.lesionops.lesionops_params
}

output "dvc_remote_url" {
  description = "DVC remote URL: `dvc remote add -d s3 <this>` (`terraform output -raw dvc_remote_url`)."
  value       = module.lesionops.dvc_remote_url
}

output "ecr_repository_url" {
  description = "Where to push the LesionOps image: docker tag lesionops:<version> <this>:<version>."
  value       = module.lesionops.ecr_repository_url
}

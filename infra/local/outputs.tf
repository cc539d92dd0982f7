output "head_address" {
  description = "The head node: where the Spark master runs."
  value       = var.bind_host
}

output "spark_master" {
  description = "The master URL for engine.master."
  value       = "spark://${var.bind_host}:${var.master_port}"
}

output "spark_ui" {
  value = "http://${var.bind_host}:${var.master_webui_port}"
}

output "nodes" {
  description = "The worker nodes, by name."
  value       = [for w in null_resource.worker : "worker-${w.triggers.instance}"]
}

output "slurm_conf" {
  description = "export SLURM_CONF=<this> to submit to the local Slurm (null without it)."
  value       = var.slurm ? "${var.run_dir}/slurm/slurm.conf" : null
}

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

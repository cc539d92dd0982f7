# A cluster whose nodes are processes on this machine: a Spark standalone master and `nodes` workers on
# `bind_host`, started and stopped by local-exec provisioners of the null provider. Re-applying with
# another `nodes` starts or stops workers; `destroy` stops them all. Variables come from the `cluster`
# config (cluster=local_nodes) through `bluewhale-cluster`.

terraform {
  required_version = ">= 1.0"
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

locals {
  spark = "${path.module}/scripts/spark.sh"
  env = {
    SPARK_HOME       = var.spark_home
    BW_RUN_DIR       = var.run_dir
    BW_BIND_HOST     = var.bind_host
    BW_MASTER_PORT   = tostring(var.master_port)
    BW_WEBUI_PORT    = tostring(var.master_webui_port)
    BW_CORES         = tostring(var.cores_per_node)
    BW_MEMORY        = var.worker_memory
    BW_READY_TIMEOUT = tostring(var.ready_timeout_s)
  }
}

resource "null_resource" "master" {
  # Everything the destroy provisioner needs rides in triggers (it may only read self).
  triggers = merge(local.env, { script = abspath(local.spark) })

  provisioner "local-exec" {
    command     = "${self.triggers.script} start-master"
    environment = local.env
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "${self.triggers.script} stop-master"
    environment = { SPARK_HOME = self.triggers.SPARK_HOME, BW_RUN_DIR = self.triggers.BW_RUN_DIR }
  }
}

resource "null_resource" "worker" {
  count = var.nodes

  triggers = merge(local.env, {
    script   = abspath(local.spark)
    instance = tostring(count.index + 1)
    master   = null_resource.master.id
  })

  provisioner "local-exec" {
    command     = "${self.triggers.script} start-worker ${count.index + 1}"
    environment = local.env
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "${self.triggers.script} stop-worker ${self.triggers.instance}"
    environment = { SPARK_HOME = self.triggers.SPARK_HOME, BW_RUN_DIR = self.triggers.BW_RUN_DIR }
  }
}

# Slurm nodes on this machine: munged, slurmctld and one slurmd per node (bluewhale.cluster.local_slurm),
# as many node entries as Spark workers. Another node count restarts it with the new entries (jobs
# running then are lost: a local cluster's scaling is a restart).
resource "null_resource" "slurm" {
  count = var.slurm ? 1 : 0

  triggers = {
    python = var.python
    folder = "${var.run_dir}/slurm"
    nodes  = tostring(var.nodes)
    cpus   = tostring(var.cores_per_node)
  }

  provisioner "local-exec" {
    command = "'${self.triggers.python}' -m bluewhale.cluster.local_slurm start '${self.triggers.folder}' --nodes ${self.triggers.nodes} --cpus ${self.triggers.cpus}"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.triggers.python}' -m bluewhale.cluster.local_slurm stop '${self.triggers.folder}'"
  }
}

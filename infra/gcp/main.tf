# An autoscaling CPU cluster on GCP: a head node (Slurm controller with cloud scheduling, Spark master) and
# a managed instance group of workers with an autoscaler between min_nodes and max_nodes. Slurm's
# ResumeProgram raises the autoscaler's floor when jobs wait; its SuspendProgram deletes idle workers and
# lowers it again.

resource "random_bytes" "munge_key" {
  length = 1024
}

locals {
  bootstrap = {
    name            = var.name
    munge_key_b64   = random_bytes.munge_key.base64
    max_nodes       = var.max_nodes
    cores_per_node  = var.cores_per_node
    node_mem_mb     = var.mem_gb * 1024
    partition       = var.partition
    suspend_after_s = var.suspend_after_s
    repo_url        = var.repo_url
    repo_ref        = var.repo_ref
  }
  slurm_conf = templatefile("${path.module}/../bootstrap/slurm.conf.tftpl", local.bootstrap)
  scripts    = { group = "${var.name}-workers", autoscaler = "${var.name}-workers", zone = var.zone, project = var.project }
}

resource "google_compute_firewall" "internal" {
  name        = "${var.name}-internal"
  network     = "default"
  description = "bluewhale ${var.name}: everything between the cluster's nodes"
  source_tags = [var.name]
  target_tags = [var.name]
  allow {
    protocol = "all"
  }
}

resource "google_compute_firewall" "user" {
  name          = "${var.name}-user"
  network       = "default"
  description   = "bluewhale ${var.name}: ssh and the Spark UI from allowed_cidr only"
  source_ranges = [var.allowed_cidr]
  target_tags   = [var.name]
  allow {
    protocol = "tcp"
    ports    = ["22", "8080"]
  }
}

resource "google_service_account" "head" {
  account_id   = "${var.name}-head"
  display_name = "bluewhale ${var.name} head: resizes the worker group"
}

resource "google_project_iam_member" "head_compute" {
  project = var.project
  role    = "roles/compute.instanceAdmin.v1"
  member  = "serviceAccount:${google_service_account.head.email}"
}

resource "google_compute_instance" "head" {
  name         = "${var.name}-head"
  machine_type = var.head_machine_type
  tags         = [var.name]

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.disk_gb
    }
  }

  network_interface {
    network = "default"
    access_config {}
  }

  service_account {
    email  = google_service_account.head.email
    scopes = ["cloud-platform"]
  }

  metadata = {
    user-data = templatefile("${path.module}/../bootstrap/head.yaml.tftpl", merge(local.bootstrap, {
      slurm_conf      = local.slurm_conf
      resume_program  = templatefile("${path.module}/scripts/resume.sh.tftpl", local.scripts)
      suspend_program = templatefile("${path.module}/scripts/suspend.sh.tftpl", local.scripts)
    }))
  }

  labels = { bluewhale-cluster = var.name, bluewhale-role = "head" }
}

resource "google_compute_instance_template" "worker" {
  name_prefix  = "${var.name}-worker-"
  machine_type = var.machine_type
  tags         = [var.name]

  disk {
    source_image = var.image
    disk_size_gb = var.disk_gb
    auto_delete  = true
    boot         = true
  }

  network_interface {
    network = "default"
  }

  metadata = {
    user-data = templatefile("${path.module}/../bootstrap/worker.yaml.tftpl", merge(local.bootstrap, {
      slurm_conf   = local.slurm_conf
      head_address = google_compute_instance.head.network_interface[0].network_ip
    }))
  }

  labels = { bluewhale-cluster = var.name, bluewhale-role = "worker" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_instance_group_manager" "workers" {
  name               = "${var.name}-workers"
  base_instance_name = "${var.name}-worker"
  zone               = var.zone

  version {
    instance_template = google_compute_instance_template.worker.id
  }
}

resource "google_compute_autoscaler" "workers" {
  name   = "${var.name}-workers"
  zone   = var.zone
  target = google_compute_instance_group_manager.workers.id

  autoscaling_policy {
    min_replicas    = var.min_nodes
    max_replicas    = var.max_nodes
    cooldown_period = 120
    cpu_utilization {
      target = 0.8
    }
  }

  lifecycle {
    ignore_changes = [autoscaling_policy[0].min_replicas] # Slurm's Resume/SuspendProgram move the floor
  }
}

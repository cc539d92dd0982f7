terraform {
  required_version = ">= 1.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }
}

# Credentials come from the environment (GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_CREDENTIALS), never
# from variables or files that bluewhale writes.
provider "google" {
  project = var.project
  region  = var.region
  zone    = var.zone
}

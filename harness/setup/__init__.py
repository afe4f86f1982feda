"""Host set-up: Docker's configuration, a running dockerd, the local test images, runvm's guest."""

"""kubeemu: kmock 0.8 with the API fidelity our tests need."""

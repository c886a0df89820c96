"""Admin commands, data rights and the wiring of access control, identity, approvals, audit."""

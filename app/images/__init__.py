"""Images: per-server image lists, builds, pushes, registries, uploads and imports."""

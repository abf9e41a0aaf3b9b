"""The synthetic face world: a procedural renderer (ground truth), its identity populations, and
the trainers that distil it into an EG3D generator plus identity, perceptual and FID networks."""

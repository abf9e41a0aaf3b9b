"""The Ray layer: worker actors, the driver-side scheduler, cluster connection and job submission.

The only package that imports ray (tests/test_layering.py enforces it). Everything below it
(config, store, guide, models, metrics) is plain Python/torch and runs without Ray.
"""

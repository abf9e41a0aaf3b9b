"""`guide-ray bench`: step speed, memory, engine throughput and a scaling model, each written as
JSON + Markdown + a PNG into one folder (benchmarks/RESULTS.md says how each table is produced).

Benchmarks measure; tests never time anything. Ray is reached only through guide_ray.engine.
"""

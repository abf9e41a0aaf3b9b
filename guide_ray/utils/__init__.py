"""Small shared helpers: seeds, images."""

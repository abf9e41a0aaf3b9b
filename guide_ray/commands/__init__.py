"""One module per `guide-ray` subcommand; heavy imports stay inside each `main`."""

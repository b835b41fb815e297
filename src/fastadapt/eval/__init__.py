"""Meta-test protocol helpers, metrics, reports (markdown + JSON) and plots."""

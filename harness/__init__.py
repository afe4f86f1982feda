"""vmparity's test harness: runtimes, daemons, scenarios, classification, results and reports."""

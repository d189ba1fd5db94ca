"""Running a plan on this machine: the deployment lifecycle with its fallback ladder (deploy, fallback), the server's
supervision (process, log_filter), and what survives a command (state, recovery, records). Uses the adapters in
backends/ and the planner; never the CLI, verification or export."""

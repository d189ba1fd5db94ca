"""gptoss-deploy planner: probe the machine, plan a gpt-oss deployment, explain it."""
